"""What the RL loops for language models (``ppo_lm``, ``grpo``) share around their update: the
settings every one has, choosing prompts, sampling and scoring completions, dropping unusable
rewards, the reference model, and the run record (one ``run.end_epoch`` per rollout, ``best``
and ``last`` checkpoints, exact resume at rollout boundaries, the KL limit).

A loop subclasses :class:`RLTrainer` and writes only its algorithm: :meth:`RLTrainer.update`
(what to do with one rollout's scored completions), and where it has state of its own (a value
head, an adaptive KL coefficient) the ``extra_*`` hooks that save and restore it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from hookforge.components import ComponentConfig, Loop
from hookforge.errors import ConfigError
from hookforge.subcomponents import Sub, sub_field
from hookforge.types import FitResult

log = logging.getLogger("hookforge")


class RLConfig(ComponentConfig):
    """The settings of every RL loop for language models."""

    num_rollouts: int = Field(20, ge=1, description="rollouts (each: sample, score, update)")
    clip_range: float = Field(0.2, gt=0, description="PPO's clip range of the probability ratio")
    kl_coef: float = Field(0.04, ge=0, description="weight of the per-token KL to the reference")
    kl_limit: float | None = Field(10.0, gt=0, description="stop (keeping 'last') when the mean "
                                                           "per-token KL to the reference exceeds this")
    lr: float = Field(1e-5, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient norm clipping")
    max_new_tokens: int = Field(16, ge=1, description="tokens sampled per completion at most")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the rollouts")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass of the rollouts")
    reward: Sub("reward") = sub_field("verifier", "what scores a completion (hookforge.rewards)")  # type: ignore[valid-type]
    reference: str | None = Field(
        None, description="the frozen reference model: a transformers directory, a causal_lm "
                          "checkpoint or a run directory (default: the policy's starting weights; "
                          "with LoRA the same network with its adapters disabled)",
        json_schema_extra={"path": True})
    max_bad_rollouts: int = Field(3, ge=1, description="rollouts in a row without a usable reward "
                                                       "before the run stops")
    monitor: str = Field("train/reward_mean", description="metric that decides the best checkpoint")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")


def check_policy(loop: str, run: Any, reference: str | None) -> None:
    """Before anything runs: the policy is a causal_lm and the reference (if any) loads."""
    from hookforge_lm.model import resolve_model_dir

    model = run.config.model
    if model is not None and model.name != "causal_lm":
        raise ConfigError(f"loop '{loop}' trains a causal_lm policy; model is '{model.name}'")
    if reference is not None:
        resolve_model_dir(reference, "loop.reference")


class RLLoop(Loop):
    """A loop that trains a causal_lm policy with ``trainer`` (an :class:`RLTrainer` subclass)."""

    trainer: type[RLTrainer]

    def preflight(self, run: Any) -> None:
        from hookforge_torch import engine

        engine.resolve_device(self.config.device)
        check_policy(self.trainer.name, run, self.config.reference)

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        return self.trainer(self.config, run, model, dataset).train()


class RLTrainer:
    """One RL run on a causal_lm policy; subclasses implement :meth:`update`."""

    name = "rl"
    # whether the update learns from the turns of whole episodes of a text environment (the
    # ``text_env`` source): rows of one episode, a reward per turn, credit passed between turns
    plays_episodes = False

    def __init__(self, cfg: RLConfig, run: Any, model: Any, dataset: Any) -> None:
        import torch

        from hookforge.errors import DataError
        from hookforge_torch import engine

        if dataset.task != "generation":
            raise DataError(f"loop '{self.name}' needs prompts (the 'tasks' or 'jsonl' source); "
                            f"the data's task is {dataset.task}")
        self.cfg, self.run, self.model = cfg, run, model
        engine.seed_everything(run.seed)
        self.device = engine.resolve_device(cfg.device)
        model.to(self.device)
        self.net = model.net
        self.train_split = dataset.split("train")
        self.env_config = dataset.info.extra.get("text_env")
        if self.env_config is not None and not self.plays_episodes:
            raise ConfigError(f"loop '{self.name}' learns from single completions; the episodes "
                              f"of a text environment (data '{dataset.info.extra.get('source')}') "
                              f"train with loop 'ppo_lm'")
        if self.env_config is not None and cfg.reward.name != "verifier":
            log.warning("loop.reward '%s' is not used: the episodes of a text environment are "
                        "scored by the environment's own rewards", cfg.reward.name)
        self.reward = cfg.reward.create() if self.env_config is None else None
        self.lora = bool(model.config.lora.enabled)
        self.formatter = model.formatter()
        self.reference = self._reference()
        self.build_extra()
        params = [p for p in self.net.parameters() if p.requires_grad]
        params += [p for m in self.extra_modules() for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.rollout = 0
        self.step = 0
        self.bad_in_a_row = 0
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.interrupted = False
        if run.resume_from is not None:
            self._restore(run.resume_from.path)
        reference = ("adapters disabled" if self.reference is None else
                     cfg.reference or "frozen copy")
        run.emit(self.name, rollouts=cfg.num_rollouts, prompts=self.prompts_per_rollout,
                 per_prompt=self.per_prompt, reference=reference, device=str(self.device))

    # -- what a subclass says ------------------------------------------------------------------------
    @property
    def prompts_per_rollout(self) -> int:
        raise NotImplementedError

    @property
    def per_prompt(self) -> int:
        """Completions sampled per prompt."""
        return 1

    def build_extra(self) -> None:
        """Create the loop's own modules (a value head) before the optimizer is made."""

    def extra_modules(self) -> list[Any]:
        """Modules trained besides the policy (their parameters join the optimizer)."""
        return []

    def usable(self, rollout: Any, rewards: Any) -> Any:
        """Which rows enter the update: those with a finite reward; of episodes, those whose
        every turn has one (a turn's advantage depends on the rewards after it)."""
        import numpy as np

        finite = np.isfinite(rewards)
        if rollout.episode is None:
            return finite
        episode = rollout.episode.cpu().numpy()
        bad = np.unique(episode[~finite])
        return ~np.isin(episode, bad)

    def update(self, rollout: Any, rewards: Any) -> dict[str, float]:
        """Learn from one rollout's usable completions; returns the rollout's metrics."""
        raise NotImplementedError

    def extra_progress(self) -> dict[str, Any]:
        """Numbers of the loop's own to carry over a resume (an adaptive KL coefficient)."""
        return {}

    def restore_progress(self, progress: dict[str, Any]) -> None:
        """The inverse of :meth:`extra_progress`."""

    def save_extra(self, directory: Path) -> None:
        """Write the loop's own weights next to the policy's in a checkpoint."""

    def restore_extra(self, directory: Path) -> None:
        """The inverse of :meth:`save_extra`."""

    # -- the reference -------------------------------------------------------------------------------
    def _reference(self) -> Any:
        """The frozen model the KL is measured against; None: the policy with adapters disabled.
        Built before a resume restores trained weights, so it is the policy as it started."""
        import copy

        if self.cfg.reference is not None:
            return self._load_reference(self.cfg.reference)
        if self.lora:
            return None
        reference = copy.deepcopy(self.net).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def _load_reference(self, path: str) -> Any:
        from transformers import AutoModelForCausalLM

        from hookforge_lm.model import resolve_model_dir
        from hookforge_torch.tokens import load_tokenizer

        directory = resolve_model_dir(path, "loop.reference")
        theirs = load_tokenizer(directory, "loop.reference")
        ours = self.formatter.tokenizer
        if theirs.get_vocab() != ours.get_vocab() or theirs.eos_token_id != ours.eos_token_id:
            raise ConfigError(f"loop.reference: the tokenizer of {directory} differs from the "
                              f"policy's ({len(theirs)} tokens against {len(ours)}, EOS "
                              f"{theirs.eos_token_id} against {ours.eos_token_id}): the KL "
                              f"between them compares different tokens")
        reference = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True,
                                                         dtype=next(self.net.parameters()).dtype)
        reference.to(self.device).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def reference_logprobs(self, rollout: Any) -> Any:
        import torch

        from hookforge_lm.rollouts import completion_logprobs

        with torch.no_grad():
            if self.reference is not None:
                return completion_logprobs(self.reference, rollout)[0]
            with self.net.disable_adapter():
                return completion_logprobs(self.net, rollout)[0]

    # -- the loop -------------------------------------------------------------------------------------
    def train(self) -> FitResult:
        from hookforge.errors import RunInterrupted
        from hookforge_torch import engine

        previous = engine.catch_interrupts(self, "interrupted", "saving 'last' after this rollout")
        try:
            while self.rollout < self.cfg.num_rollouts and not self.run.should_stop:
                self.rollout_step()
                if self.interrupted:
                    raise RunInterrupted("interrupted")
        finally:
            engine.restore_signal_handlers(previous)
        best = self.run.record.checkpoint_dir("best") if self.run.primary else None
        if best is not None:
            self.model.restore_weights(best)
            self.restore_extra(best)
        return FitResult(epochs=self.rollout, steps=self.step, best_metric=self.best_value,
                         best_epoch=self.best_epoch, stop_reason=self.run.stop_reason,
                         extra={"monitor": self.cfg.monitor})

    def rollout_step(self) -> None:
        """One rollout: prompts (or episodes), completions, rewards, the update, the record."""
        import numpy as np
        import torch

        from hookforge.errors import UsageError
        from hookforge_lm.rollouts import select

        cfg, run = self.cfg, self.run
        started = time.perf_counter()
        run.hook.hookforge_before_epoch(run=run, epoch=self.rollout)
        rollout, rewards, collected = self.collect()
        keep = self.usable(rollout, rewards)
        metrics: dict[str, float] = {"dropped": float((~keep).sum()), **collected}
        if not keep.any():
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= cfg.max_bad_rollouts:
                self._save_last()
                scorer = "the environment" if self.env_config is not None else "loop.reward"
                raise UsageError(f"{scorer} gave no usable reward (NaN or not a number) in "
                                 f"{self.bad_in_a_row} rollouts in a row (rollout {self.rollout}); "
                                 f"stopped, checkpoint 'last' is kept")
        else:
            self.bad_in_a_row = 0
            index = torch.from_numpy(np.flatnonzero(keep)).to(self.device)
            kept = rewards[keep]
            metrics.update(self.update(select(rollout, index),
                                       torch.tensor(kept, dtype=torch.float32, device=self.device)))
            if "reward_mean" not in metrics:
                metrics.update({"reward_mean": float(kept.mean()), "reward_std": float(kept.std()),
                                "success_rate": float((kept > 0).mean())})
        self.rollout += 1
        self.step += 1
        metrics["rollout_s"] = time.perf_counter() - started
        scoped = {f"train/{k}": v for k, v in metrics.items()}
        run.report_steps(self.step, self.rollout - 1, {})  # the step hooks; values go in end_epoch
        run.end_epoch(self.rollout - 1, self.step, scoped, duration_s=metrics["rollout_s"])
        self._track_best(scoped)
        self._save_last()
        kl = metrics.get("kl")
        if cfg.kl_limit is not None and kl is not None and kl > cfg.kl_limit:
            raise UsageError(f"the KL to the reference reached {kl:.3g} at rollout {self.rollout - 1}, "
                             f"above loop.kl_limit={cfg.kl_limit}; stopped, checkpoint 'last' is kept "
                             f"(lower loop.lr or raise loop.kl_coef)")

    def collect(self) -> tuple[Any, Any, dict[str, float]]:
        """(the rollout, each row's reward as float64 with NaN where unusable, metrics of the
        collection): completions of prompts drawn from the training split, or with a text
        environment whole episodes played from seeds derived from (seed, rollout)."""
        import numpy as np

        from hookforge.seeds import derive_seed
        from hookforge_lm.rollouts import sample_completions

        cfg, run = self.cfg, self.run
        n = self.prompts_per_rollout
        sampling = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                    "top_p": cfg.top_p, "context": self.model.context,
                    "seed": derive_seed(run.seed, self.name, self.rollout), "device": self.device}
        if self.env_config is not None:
            return self._episodes([derive_seed(run.seed, "episode", self.rollout, i)
                                   for i in range(n)], sampling)
        X = self.train_split.X
        rng = np.random.default_rng([run.seed, self.rollout])
        picked = rng.choice(len(X), n, replace=len(X) < n)
        rows = X.iloc[np.sort(picked)].reset_index(drop=True)
        rollout = sample_completions(self.net, self.formatter, rows, self.per_prompt, **sampling)
        return rollout, self._rewards(rollout), {}

    def _episodes(self, seeds: list[int], sampling: dict[str, Any]) -> tuple[Any, Any, dict[str, float]]:
        """One episode per seed; the metrics are those of the episodes with usable rewards."""
        import numpy as np

        from hookforge_lm.episodes import rollout_of_episodes

        rollout, rewards, episodes = rollout_of_episodes(self.net, self.formatter, self.env_config,
                                                         seeds, **sampling)
        usable = [e for e in episodes if np.isfinite(e.rewards).all()]
        metrics = {"dropped": float(len(episodes) - len(usable)), "turns": float(len(rewards))}
        if usable:
            returns = np.array([e.total for e in usable])
            metrics.update({"reward_mean": float(returns.mean()), "reward_std": float(returns.std()),
                            "success_rate": float(np.mean([bool(e.success) for e in usable])),
                            "episode_length": float(np.mean([len(e.actions) for e in usable]))})
        return rollout, rewards, metrics

    def _rewards(self, rollout: Any) -> Any:
        """The reward of every completion as float64, NaN where it is not a finite number."""
        import numpy as np

        from hookforge_lm.rollouts import reward_value

        raw = self.reward(rollout.rows, rollout.texts)
        out = np.full(len(rollout.texts), np.nan)
        for i, value in enumerate(list(raw)[:len(out)]):
            out[i] = reward_value(value)
        return out

    def clip_and_step(self, loss: Any) -> None:
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        self.optimizer.step()

    # -- best, last, resume ------------------------------------------------------------------------------
    def _save_weights(self, directory: Path) -> None:
        self.model.save(directory)
        self.save_extra(directory)

    def _track_best(self, metrics: dict[str, float]) -> None:
        value = metrics.get(self.cfg.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best_value is None or value > self.best_value:
            self.best_value, self.best_epoch = value, self.rollout - 1
            self.run.save_checkpoint("best", self._save_weights, epoch=self.rollout - 1,
                                     step=self.step, metric=value,
                                     extra={"monitor": self.cfg.monitor})

    def _save_last(self) -> None:
        from hookforge_torch import engine
        from hookforge_torch.checkpoint import save_training_state

        state = {"optimizer": self.optimizer.state_dict(), "rng": engine.rng_state(),
                 "progress": {"rollout": self.rollout, "step": self.step,
                              "bad_in_a_row": self.bad_in_a_row, **self.extra_progress()},
                 "best": {"value": self.best_value, "epoch": self.best_epoch},
                 "stop_reason": self.run.stop_reason if self.run.should_stop else None}

        def fill(directory: Path) -> None:
            self._save_weights(directory)
            save_training_state(state, directory)

        self.run.save_checkpoint("last", fill, epoch=self.rollout, step=self.step)

    def _restore(self, directory: Path) -> None:
        from hookforge_torch import engine
        from hookforge_torch.checkpoint import load_training_state

        state = load_training_state(directory)  # weights_only: loads no code
        self.model.restore_weights(directory)
        self.net.to(self.device)
        self.restore_extra(directory)
        self.optimizer.load_state_dict(state["optimizer"])
        progress = state["progress"]
        self.rollout, self.step = progress["rollout"], progress["step"]
        self.bad_in_a_row = progress["bad_in_a_row"]
        self.restore_progress(progress)
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        if state.get("stop_reason"):
            self.run.should_stop, self.run.stop_reason = True, state["stop_reason"]
        engine.set_rng_state(state["rng"])
        log.info("resuming %s at rollout %d", self.name, self.rollout)
