"""The ``grpo`` loop: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath) for a
``causal_lm`` policy.

One rollout, every step in order:
  1. draw ``prompts_per_rollout`` prompts of the training split (seeded by (seed, rollout));
  2. sample ``group_size`` completions of each from the policy (temperature, top_p);
  3. score them with the reward component (a task's verifier, a reward model, a sum); a group
     with a reward that is NaN or not a number is dropped and counted;
  4. advantage = (reward - group mean) / group std: no value model;
  5. log-probabilities of the sampled tokens under the policy as it sampled (old) and under the
     frozen reference (the starting weights; with LoRA the same network with adapters disabled,
     no second copy in memory);
  6. ``epochs_per_rollout`` updates of hookforge-ppo's clipped surrogate per token plus
     ``kl_coef`` x the per-token KL to the reference, averaged per completion, gradient clipped.
Each rollout is one ``run.end_epoch`` (reward, success rate, KL, entropy, response length, clip
fraction, loss), so trackers, the best checkpoint and early stopping behave as everywhere;
``checkpoints/last`` after every rollout holds weights, optimizer, RNGs and the rollout index, so
a killed run resumes exactly. A KL above ``kl_limit`` stops the run with ``last`` kept.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from hookforge.components import ComponentConfig, Loop
from hookforge.subcomponents import Sub, sub_field
from hookforge.types import FitResult

log = logging.getLogger("hookforge")


class GrpoConfig(ComponentConfig):
    num_rollouts: int = Field(20, ge=1, description="rollouts (each: sample, score, update)")
    prompts_per_rollout: int = Field(8, ge=1, description="prompts drawn per rollout")
    group_size: int = Field(4, ge=2, description="completions sampled per prompt")
    epochs_per_rollout: int = Field(1, ge=1, description="updates on each rollout")
    clip_range: float = Field(0.2, gt=0, description="PPO's clip range of the probability ratio")
    kl_coef: float = Field(0.04, ge=0, description="weight of the per-token KL to the reference")
    kl_limit: float | None = Field(10.0, gt=0, description="stop (keeping 'last') when the mean "
                                                           "KL to the reference exceeds this")
    lr: float = Field(1e-5, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient norm clipping")
    max_new_tokens: int = Field(16, ge=1, description="tokens sampled per completion at most")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the rollouts")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass of the rollouts")
    reward: Sub("reward") = sub_field("verifier", "what scores a completion (hookforge.rewards)")  # type: ignore[valid-type]
    max_bad_rollouts: int = Field(3, ge=1, description="rollouts in a row without a usable reward "
                                                       "before the run stops")
    monitor: str = Field("train/reward_mean", description="metric that decides the best checkpoint")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")


class GrpoLoop(Loop):
    """GRPO on a causal_lm policy (see the module docstring)."""

    Config = GrpoConfig

    def preflight(self, run: Any) -> None:
        from hookforge.errors import ConfigError
        from hookforge_torch import engine

        engine.resolve_device(self.config.device)
        model = run.config.model
        if model is not None and model.name != "causal_lm":
            raise ConfigError(f"loop 'grpo' trains a causal_lm policy; model is '{model.name}'")

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        return GrpoTrainer(self.config, run, model, dataset).train()


class GrpoTrainer:
    def __init__(self, cfg: GrpoConfig, run: Any, model: Any, dataset: Any) -> None:
        import copy

        import torch

        from hookforge.errors import DataError
        from hookforge_torch import engine

        if dataset.task != "generation":
            raise DataError(f"loop 'grpo' needs prompts (the 'tasks' or 'jsonl' source); the data's "
                            f"task is {dataset.task}")
        self.cfg, self.run, self.model = cfg, run, model
        engine.seed_everything(run.seed)
        self.device = engine.resolve_device(cfg.device)
        model.to(self.device)
        self.net = model.net
        self.train_split = dataset.split("train")
        self.reward = cfg.reward.create()
        self.lora = bool(model.config.lora.enabled)
        # the reference is the policy before any update: built now, before a resume restores
        # trained weights; with LoRA it is the same network with its adapters switched off
        self.reference = None
        if not self.lora:
            self.reference = copy.deepcopy(self.net).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.formatter = model.formatter()
        self.rollout = 0
        self.step = 0
        self.bad_in_a_row = 0
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.interrupted = False
        if run.resume_from is not None:
            self._restore(run.resume_from.path)
        run.emit("grpo", rollouts=cfg.num_rollouts, group_size=cfg.group_size,
                 prompts=cfg.prompts_per_rollout, reference="adapters disabled" if self.lora
                 else "frozen copy", device=str(self.device))

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
        return FitResult(epochs=self.rollout, steps=self.step, best_metric=self.best_value,
                         best_epoch=self.best_epoch, stop_reason=self.run.stop_reason,
                         extra={"monitor": self.cfg.monitor})

    def rollout_step(self) -> None:
        import numpy as np
        import torch

        from hookforge.errors import UsageError
        from hookforge.seeds import derive_seed
        from hookforge_lm.rollouts import sample_completions

        cfg, run, net = self.cfg, self.run, self.net
        started = time.perf_counter()
        run.hook.hookforge_before_epoch(run=run, epoch=self.rollout)
        X = self.train_split.X
        rng = np.random.default_rng([run.seed, self.rollout])
        picked = rng.choice(len(X), cfg.prompts_per_rollout, replace=len(X) < cfg.prompts_per_rollout)
        rows = X.iloc[np.sort(picked)].reset_index(drop=True)
        rollout = sample_completions(
            net, self.formatter, rows, cfg.group_size, max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature, top_p=cfg.top_p, context=self.model.context,
            seed=derive_seed(run.seed, "grpo", self.rollout), device=self.device)
        rewards = self._rewards(rollout)
        groups_ok = np.isfinite(rewards.reshape(-1, cfg.group_size)).all(1)
        keep = np.repeat(groups_ok, cfg.group_size)
        dropped = int((~keep).sum())
        metrics: dict[str, float] = {"dropped": float(dropped)}
        if not keep.any():
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= cfg.max_bad_rollouts:
                self._save_last()
                raise UsageError(f"loop.reward gave no usable reward (NaN or not a number) in "
                                 f"{self.bad_in_a_row} rollouts in a row (rollout {self.rollout}); "
                                 f"stopped, checkpoint 'last' is kept")
        else:
            self.bad_in_a_row = 0
            index = torch.from_numpy(np.flatnonzero(keep)).to(self.device)
            metrics.update(self._update(rollout, torch.tensor(rewards[keep], dtype=torch.float32,
                                                              device=self.device), index))
            kept = rewards[keep]
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

    def _rewards(self, rollout: Any) -> Any:
        """The reward of every completion as float64, NaN where it is not a finite number."""
        import numpy as np

        raw = self.reward(rollout.rows, rollout.texts)
        out = np.full(len(rollout.texts), np.nan)
        for i, value in enumerate(list(raw)[:len(out)]):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            out[i] = number if math.isfinite(number) else np.nan
        return out

    def _update(self, rollout: Any, rewards: Any, index: Any) -> dict[str, float]:
        """Steps 4 to 6 on the completions at ``index`` (the groups with usable rewards)."""
        import torch

        from hookforge_lm.rollouts import (
            Rollout,
            completion_logprobs,
            group_advantages,
            kl_per_token,
            masked_mean,
        )
        from hookforge_ppo.ppo import clipped_surrogate

        cfg, net = self.cfg, self.net

        sub = Rollout(rollout.input_ids[index], rollout.attention_mask[index], rollout.prompt_width,
                      rollout.completion_mask[index], [rollout.texts[i] for i in index.tolist()],
                      rollout.rows.iloc[index.cpu().numpy()])
        mask = sub.completion_mask
        advantages = group_advantages(rewards, cfg.group_size)[:, None]
        with torch.no_grad():
            old, _ = completion_logprobs(net, sub)
            if self.reference is not None:
                reference, _ = completion_logprobs(self.reference, sub)
            else:
                with net.disable_adapter():
                    reference, _ = completion_logprobs(net, sub)
        net.train()
        for _ in range(cfg.epochs_per_rollout):
            new, entropy = completion_logprobs(net, sub)
            surrogate, clipped = clipped_surrogate(new - old, advantages, cfg.clip_range)
            kl = kl_per_token(new, reference)
            loss = masked_mean(surrogate + cfg.kl_coef * kl, mask)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
        with torch.no_grad():
            return {"loss": float(loss), "kl": float(masked_mean(kl.detach(), mask)),
                    "entropy": float(masked_mean(entropy.detach(), mask)),
                    "clip_fraction": float(masked_mean(clipped.float(), mask)),
                    "response_length": float(mask.sum(1).mean())}

    # -- best, last, resume ------------------------------------------------------------------------------
    def _track_best(self, metrics: dict[str, float]) -> None:
        value = metrics.get(self.cfg.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best_value is None or value > self.best_value:
            self.best_value, self.best_epoch = value, self.rollout - 1
            self.run.save_checkpoint("best", self.model.save, epoch=self.rollout - 1, step=self.step,
                                     metric=value, extra={"monitor": self.cfg.monitor})

    def _save_last(self) -> None:
        from hookforge_torch import engine
        from hookforge_torch.checkpoint import save_training_state

        state = {"optimizer": self.optimizer.state_dict(), "rng": engine.rng_state(),
                 "progress": {"rollout": self.rollout, "step": self.step,
                              "bad_in_a_row": self.bad_in_a_row},
                 "best": {"value": self.best_value, "epoch": self.best_epoch},
                 "stop_reason": self.run.stop_reason if self.run.should_stop else None}

        def fill(directory: Path) -> None:
            self.model.save(directory)
            save_training_state(state, directory)

        self.run.save_checkpoint("last", fill, epoch=self.rollout, step=self.step)

    def _restore(self, directory: Path) -> None:
        from hookforge_torch import engine
        from hookforge_torch.checkpoint import load_training_state

        state = load_training_state(directory)  # weights_only: loads no code
        self.model.restore_weights(directory)
        self.net.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        progress = state["progress"]
        self.rollout, self.step = progress["rollout"], progress["step"]
        self.bad_in_a_row = progress["bad_in_a_row"]
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        if state.get("stop_reason"):
            self.run.should_stop, self.run.stop_reason = True, state["stop_reason"]
        engine.set_rng_state(state["rng"])
        log.info("resuming GRPO at rollout %d", self.rollout)
