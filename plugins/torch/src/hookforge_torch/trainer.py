"""The training engine behind the ``supervised`` loop.

Exact resume is the design constraint: everything that decides what happens next is either a pure
function of (seed, epoch) (the batch order) or saved in ``checkpoints/last`` (weights, optimizer,
scheduler, scaler, every RNG, the position in the epoch, early-stopping and best-metric state, the
partial loss accumulators). Checkpoints and interruption happen only at optimizer-step boundaries,
so a resumed run replays exactly the steps an uninterrupted one would take.

The hot path does no host-device synchronisation: each step's detached loss is appended to a list
that is summed and read only every ``run.log_every_n_steps`` steps, at checkpoints and at epoch
ends (a list append costs less than an in-place tensor add on CPU).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from hookforge.errors import DataError, RunInterrupted, UsageError
from hookforge.progress import progress_bar
from hookforge.search import default_direction
from hookforge.types import FitResult
from hookforge_torch import engine
from hookforge_torch.checkpoint import load_training_state, save_training_state

log = logging.getLogger("hookforge")


class TrainingDiverged(UsageError):
    """The loss became NaN or infinite."""


def build_optimizer(cfg: Any, parameters: Any) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    if cfg.name in ("adamw", "adam"):
        cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        try:  # one fused kernel per step (CPU and CUDA), as transformers' Trainer defaults to
            return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, fused=True)
        except (RuntimeError, ValueError):  # parameters on a device or of a dtype without one
            return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """Warmup (linear from ~0) then the chosen schedule, composed from torch's schedulers."""
    schedulers = torch.optim.lr_scheduler
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(cfg.warmup_ratio * total_steps)
    warmup = min(warmup, max(total_steps - 1, 0))
    rest = max(1, total_steps - warmup)
    if cfg.name == "linear":
        main = schedulers.LinearLR(optimizer, 1.0, 0.0, total_iters=rest)
    elif cfg.name == "cosine":
        floor = optimizer.param_groups[0]["lr"] * cfg.min_lr_ratio
        main = schedulers.CosineAnnealingLR(optimizer, T_max=rest, eta_min=floor)
    elif cfg.name == "cosine_with_restarts":
        floor = optimizer.param_groups[0]["lr"] * cfg.min_lr_ratio
        main = schedulers.CosineAnnealingWarmRestarts(optimizer, T_0=math.ceil(rest / cfg.num_cycles),
                                                      eta_min=floor)
    elif warmup == 0:
        return None  # a constant rate needs no scheduler (and no per-step call)
    else:
        main = schedulers.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    warm = schedulers.LinearLR(optimizer, 1e-8, 1.0, total_iters=warmup)
    return schedulers.SequentialLR(optimizer, [warm, main], milestones=[warmup])


def _direction(mode: str, metric: str) -> str:
    if mode == "auto":
        return "min" if default_direction(metric) == "minimize" else "max"
    return mode


class Trainer:
    """One training run of a TorchModel (built by :class:`~hookforge_torch.loop.SupervisedLoop`)."""

    def __init__(self, cfg: Any, run: Any, model: Any, dataset: Any) -> None:
        self.cfg, self.run, self.model, self.dataset = cfg, run, model, dataset
        engine.seed_everything(run.seed, cfg.deterministic)
        self.device = engine.resolve_device(cfg.device)
        self.dist = engine.Distributed(self.device)
        self.train_split = dataset.split("train")
        self.val_split = dataset.splits.get("val")
        n_train = model.num_examples(self.train_split)
        if cfg.batch_size * self.dist.world_size > n_train:
            raise DataError(f"loop.batch_size {cfg.batch_size} is larger than the training split "
                            f"({n_train} examples"
                            + (f" over {self.dist.world_size} processes)" if self.dist.enabled else ")"))
        self.eval_batch_size = cfg.eval_batch_size or cfg.batch_size * 4
        model.to(self.device)
        self._set_class_weights()
        self.batches_per_epoch = len(self._plan(0))
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.gradient_accumulation)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(cfg.optimizer, model.module.parameters())
        self.scheduler = build_scheduler(cfg.scheduler, self.optimizer, self.total_steps)
        amp = cfg.amp
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=amp.enabled and amp.dtype == "float16" and self.device.type == "cuda")
        self.use_scaler = self.scaler.is_enabled()
        self._amp_context = self._autocast()  # reusable: entered once per step
        self.monitor = cfg.monitor if self.val_split is not None or not cfg.monitor.startswith("val/") \
            else "train/loss"
        self.monitor_mode = _direction(cfg.monitor_mode, self.monitor)
        es = cfg.early_stopping
        self.es_metric = es.metric
        self.es_mode = _direction(es.mode, es.metric) if es.metric else "min"
        # progress and state that a checkpoint must carry
        self.epoch = 0
        self.batch = 0  # next batch of the current epoch
        self.step = 0  # optimizer steps so far
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.es_best: float | None = None
        self.es_bad = 0
        self.pending: list[torch.Tensor] = []  # detached losses since the last report (no sync)
        self.epoch_loss_sum = 0.0
        self.epoch_batches = 0
        self.epoch_examples = 0
        self.epoch_seconds = 0.0
        self.last_saved_step = -1
        self._interrupted = False  # set by the signal handler of this process
        self._stop_agreed = False  # under DDP: every process agreed to stop (at reporting points)
        self.setup()
        if run.resume_from is not None:
            self._restore(run.resume_from.path)
        run.emit("trainer", device=str(self.device), trainable_parameters=model.trainable_parameters(),
                 steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                 amp=amp.dtype if amp.enabled else None)

    # -- set-up ------------------------------------------------------------------------------------
    def _plan(self, epoch: int) -> list[Any]:
        """This process's batches of an epoch. Under DDP every process draws the same plan of
        global batches (batch_size x world size) and takes its own slice of each."""
        world = self.dist.world_size
        plan = self.model.batch_plan(self.train_split, self.cfg.batch_size * world,
                                     seed=self.run.seed, epoch=epoch, shuffle=self.cfg.shuffle,
                                     drop_last=self.cfg.drop_last)
        if world == 1:
            return plan
        return [batch[self.dist.rank::world] for batch in plan if len(batch) >= world]

    def _set_class_weights(self) -> None:
        weights = self.cfg.class_weights
        if weights == "none" or self.dataset.task != "classification":
            return
        n_classes = len(self.dataset.info.classes)
        if weights == "balanced":
            import numpy as np

            counts = np.bincount(np.asarray(self.train_split.y), minlength=n_classes).astype(float)
            values = counts.sum() / (n_classes * np.maximum(counts, 1))
        else:
            if len(weights) != n_classes:
                raise DataError(f"loop.class_weights has {len(weights)} values but the data has "
                                f"{n_classes} classes")
            values = weights
        self.model.class_weights = torch.tensor(values, dtype=torch.float32, device=self.device)

    def _autocast(self) -> Any:
        return engine.autocast(self.device, self.cfg.amp.enabled, self.cfg.amp.dtype)

    # -- what a loop built on this engine may change -------------------------------------------------
    # A loop with another objective (an adversarial autoencoder's discriminator, a diffusion
    # decoder's denoising loss) overrides these and inherits everything else: batches,
    # accumulation, AMP, clipping, schedules, validation, checkpoints, early stopping, resume.
    def setup(self) -> None:
        """Build what else the loop trains (a second network, its optimizer); runs after the
        model's optimizer exists and before a checkpoint is restored."""

    def step_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of one micro-batch whose backward() trains the model (called in train mode)."""
        with self._amp_context:
            return self.model.compute_loss(batch, self.model.forward(batch))

    def epoch_metrics(self) -> dict[str, float]:
        """Extra ``train/...`` metrics at each epoch end; an override resets its own sums here."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """More training state for ``checkpoints/last`` (tensors, numbers, dicts of them)."""
        return {}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    # -- the loop ----------------------------------------------------------------------------------
    def train(self) -> FitResult:
        run, cfg = self.run, self.cfg
        previous = engine.catch_interrupts(self, "_interrupted", "saving 'last' after this step")
        if self.dist.enabled:
            import inspect

            from torch.nn.parallel import DistributedDataParallel

            # Buffers (input statistics...) are synced once at start, not at every forward.
            options = inspect.signature(DistributedDataParallel).parameters
            no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in options
                              else {"broadcast_buffers": False})
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.model.module = DistributedDataParallel(self.model.module, device_ids=device_ids,
                                                        **no_buffer_sync)
        try:
            with progress_bar(run, self.total_steps, run.name) as bar:
                bar.advance(self.step)
                self._shown_step = self.step
                while self.epoch < cfg.epochs and not run.should_stop:
                    self._train_epoch(bar)
                    if run.should_stop or self.epoch >= cfg.epochs:
                        break
        finally:
            engine.restore_signal_handlers(previous)
            self.model.module = engine.unwrap(self.model.module)
            self.dist.close()
        self._load_best()
        return FitResult(epochs=self.epoch, steps=self.step, best_metric=self.best_value,
                         best_epoch=self.best_epoch, stop_reason=run.stop_reason,
                         extra={"monitor": self.monitor})

    def _train_epoch(self, bar: Any) -> None:
        run, cfg, model = self.run, self.cfg, self.model
        if self.batch == 0:
            run.hook.hookforge_before_epoch(run=run, epoch=self.epoch)
        plan = self._plan(self.epoch)
        # Everything the per-step path touches, looked up once (this loop is the hot path).
        module, optimizer, scaler, scheduler = model.module, self.optimizer, self.scaler, self.scheduler
        use_scaler, pending, split, device = self.use_scaler, self.pending, self.train_split, self.device
        accumulate, grad_clip = cfg.gradient_accumulation, cfg.grad_clip
        val_every, checkpoint_every = cfg.val_every_n_steps, cfg.checkpoint_every_n_steps
        log_every, n_batches = run.log_every_n_steps, len(plan)
        step_loss, collate = self.step_loss, model.collate
        on_cpu = device.type == "cpu"
        module.train()
        started = time.perf_counter()
        for b in range(self.batch, n_batches):
            indices = plan[b]
            batch = collate(split, indices)
            if not on_cpu:
                batch = engine.to_device(batch, device)
            group_start = b - b % accumulate
            group_size = min(accumulate, n_batches - group_start)
            loss = step_loss(batch)
            scaled = loss / group_size if group_size > 1 else loss
            (scaler.scale(scaled) if use_scaler else scaled).backward()
            pending.append(loss.detach())
            self.epoch_examples += len(indices)
            if b - group_start + 1 < group_size:
                continue  # accumulate more micro-batches before stepping
            if use_scaler:
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            self.step += 1
            self.batch = b + 1
            if self.step % log_every == 0:
                self._report_window(bar)
            if val_every and self.step % val_every == 0 and self.batch < n_batches:
                self._validate_and_track(time.perf_counter() - started, epoch_end=False)
                module.train()
            if checkpoint_every and self.step % checkpoint_every == 0:
                self.epoch_seconds += time.perf_counter() - started
                started = time.perf_counter()
                self._save_last(periodic=True)
            if self._interrupted if not self.dist.enabled else self._stop_agreed:
                self.epoch_seconds += time.perf_counter() - started
                self._stop_interrupted()
        self.epoch_seconds += time.perf_counter() - started
        if pending:
            self._report_window(bar)
        if self.dist.enabled:  # agree on Ctrl-C before the epoch-end checkpoint
            self._stop_agreed = self.dist.all_sum(float(self._interrupted))[0] > 0
        self._validate_and_track(self.epoch_seconds, epoch_end=True)
        self.epoch += 1
        self.batch = 0
        self.epoch_loss_sum = 0.0
        self.epoch_batches = self.epoch_examples = 0
        self.epoch_seconds = 0.0
        if self._interrupted if not self.dist.enabled else self._stop_agreed:
            self._stop_interrupted()
        self._save_last()

    def _stop_interrupted(self) -> None:
        self._save_last()
        if self.dist.enabled and self.run.primary:
            # torchrun stops the remaining workers once one exits with 130, possibly before the
            # core marks the run: mark it here, after 'last' is safe.
            self.run.record.update_info(status="interrupted")
        raise RunInterrupted("interrupted")

    def _report_window(self, bar: Any) -> None:
        total = float(torch.stack(self.pending).sum())  # the one device sync per window
        count = len(self.pending)
        self.pending.clear()
        if self.dist.enabled:  # one collective per window: mean over every process, stop flag
            total, count, stop = self.dist.all_sum(total, count, float(self._interrupted))
            self._stop_agreed = stop > 0
        self.epoch_loss_sum += total
        self.epoch_batches += count
        loss = total / count
        self._check_finite(loss)
        lr = self.optimizer.param_groups[0]["lr"]
        self.run.report_steps(self.step, self.epoch, {"loss": loss, "lr": lr})
        bar.advance(self.step - self._shown_step, epoch=self.epoch + 1, loss=loss)
        self._shown_step = self.step

    def _check_finite(self, loss: float) -> None:
        if not math.isfinite(loss):
            kept = (f"checkpoint 'last' from step {self.last_saved_step} is kept"
                    if self.last_saved_step >= 0 else "no checkpoint was saved yet")
            raise TrainingDiverged(
                f"the training loss became {loss} around step {self.step} (epoch {self.epoch}); "
                f"training stopped and {kept}. Lower loop.optimizer.lr, set loop.grad_clip, or "
                f"check the data")

    # -- validation, best checkpoint, early stopping -------------------------------------------------
    def _validate_and_track(self, seconds: float, *, epoch_end: bool) -> None:
        run = self.run
        metrics: dict[str, float] = {}
        if epoch_end and self.epoch_batches:
            train_loss = self.epoch_loss_sum / self.epoch_batches
            self._check_finite(train_loss)
            metrics["train/loss"] = train_loss
            examples = self.dist.all_sum(self.epoch_examples)[0]
            metrics["train/samples_per_s"] = examples / max(seconds, 1e-9)
            metrics["train/epoch_time_s"] = seconds
            metrics["train/peak_memory_mb"] = engine.peak_memory_mb(self.device)
            metrics.update({f"train/{k}": v for k, v in self.epoch_metrics().items()})
        if self.val_split is not None:
            val_loss, predictions = self.model.run_split(self.val_split, self.eval_batch_size,
                                                         self._autocast())
            if val_loss is not None:
                metrics["val/loss"] = val_loss
            for name, value in run.score(self.model, self.dataset, "val", predictions).items():
                metrics[f"val/{name}"] = value
        if epoch_end:
            run.end_epoch(self.epoch, self.step, metrics, duration_s=seconds)
            if run.primary:
                    log.info("epoch %d/%d  %s", self.epoch + 1, self.cfg.epochs,
                         "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                                   if k in ("train/loss", "val/loss", self.monitor)))
        else:
            run.log_metrics({k.split("/", 1)[1]: v for k, v in metrics.items()}, step=self.step,
                            epoch=self.epoch, split="val")
        if epoch_end:
            self._check_logged(metrics)
        self._track_best(metrics)
        self._early_stopping(metrics)

    def _check_logged(self, metrics: dict[str, float]) -> None:
        """The monitored and early-stopping metrics exist (a typo would silently mean no best
        checkpoint, or no stopping): checked at the first epoch end, where every metric is."""
        from hookforge.errors import did_you_mean

        for option, name in (("loop.monitor", self.monitor),
                             ("loop.early_stopping.metric", self.es_metric)):
            if name and name not in metrics:
                raise UsageError(f"{option} '{name}' is not logged{did_you_mean(name, metrics)}; "
                                 f"logged: {', '.join(sorted(metrics)) or 'none'}")

    def _better(self, value: float, best: float | None, mode: str, delta: float = 0.0) -> bool:
        if best is None:
            return True
        return value < best - delta if mode == "min" else value > best + delta

    def _track_best(self, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self._better(value, self.best_value, self.monitor_mode):
            self.best_value, self.best_epoch = value, self.epoch
            self.run.save_checkpoint("best", self.model.save, epoch=self.epoch, step=self.step,
                                     metric=value, extra={"monitor": self.monitor})

    def _early_stopping(self, metrics: dict[str, float]) -> None:
        if not self.es_metric:
            return
        value = metrics.get(self.es_metric)
        if value is None:
            available = ", ".join(sorted(metrics)) or "none"
            raise UsageError(f"loop.early_stopping.metric '{self.es_metric}' is not logged; "
                             f"logged: {available}")
        if self._better(value, self.es_best, self.es_mode, self.cfg.early_stopping.min_delta):
            self.es_best, self.es_bad = value, 0
        else:
            self.es_bad += 1
            if self.es_bad >= self.cfg.early_stopping.patience:
                self.run.request_stop("early_stopping")

    # -- checkpoints and resume ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": engine.rng_state(),
            "progress": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "best": {"value": self.best_value, "epoch": self.best_epoch},
            "early_stopping": {"best": self.es_best, "bad": self.es_bad},
            # a stop already decided (early stopping, pruning) is part of what happens next: a run
            # killed after it must not train another epoch on resume
            "stop_reason": self.run.stop_reason if self.run.should_stop else None,
            "accumulators": {
                "pending": torch.stack(self.pending).cpu() if self.pending else torch.zeros(0),
                "epoch_loss_sum": self.epoch_loss_sum, "epoch_batches": self.epoch_batches,
                "epoch_examples": self.epoch_examples, "epoch_seconds": self.epoch_seconds,
            },
            "extra": self.extra_state(),
        }

    def _save_last(self, periodic: bool = False) -> None:
        if self.pending:  # never checkpoint weights that already diverged
            self._check_finite(float(torch.stack(self.pending).sum()))
        rngs = self.dist.gather(engine.rng_state())  # every process's RNGs, for exact resume
        if not self.run.primary:
            return
        state = self._state()
        if self.dist.enabled:
            state["rng_per_rank"] = rngs

        def fill(directory: Path) -> None:
            self.model.save(directory)
            save_training_state(state, directory)

        info = self.run.save_checkpoint("last", fill, epoch=self.epoch, step=self.step)
        self.last_saved_step = self.step
        if periodic and self.cfg.keep_last_n:
            self.run.save_checkpoint(f"step-{self.step}", epoch=self.epoch, step=self.step,
                                     source=info.path)
            self.run.record.prune_checkpoints("step-", self.cfg.keep_last_n)

    def _restore(self, directory: Path) -> None:
        state = load_training_state(directory)
        self.model.restore_weights(directory)
        self.model.module.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        progress = state["progress"]
        self.epoch, self.batch, self.step = progress["epoch"], progress["batch"], progress["step"]
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        self.es_best, self.es_bad = state["early_stopping"]["best"], state["early_stopping"]["bad"]
        if state.get("stop_reason"):
            self.run.should_stop, self.run.stop_reason = True, state["stop_reason"]
        acc = state["accumulators"]
        self.pending = list(acc["pending"].to(self.device).unbind(0))
        self.epoch_loss_sum, self.epoch_batches = acc["epoch_loss_sum"], acc["epoch_batches"]
        self.epoch_examples, self.epoch_seconds = acc["epoch_examples"], acc["epoch_seconds"]
        self.last_saved_step = self.step
        self.restore_extra_state(state.get("extra") or {})
        per_rank = state.get("rng_per_rank")
        same_world = per_rank is not None and len(per_rank) == self.dist.world_size
        engine.set_rng_state(per_rank[self.dist.rank] if same_world else state["rng"])
        log.info("resuming at epoch %d, batch %d (step %d)", self.epoch + 1, self.batch, self.step)

    def _load_best(self) -> None:
        """Leave the model in its best state, as the loop contract asks."""
        best = self.run.record.checkpoint_dir("best") if self.run.primary else None
        if best is not None:
            self.model.restore_weights(best)
