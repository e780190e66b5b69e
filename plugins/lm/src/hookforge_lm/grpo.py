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

from typing import Any

from pydantic import Field

from hookforge_lm.rl import RLConfig, RLLoop, RLTrainer


class GrpoConfig(RLConfig):
    prompts_per_rollout: int = Field(8, ge=1, description="prompts drawn per rollout")
    group_size: int = Field(4, ge=2, description="completions sampled per prompt")
    epochs_per_rollout: int = Field(1, ge=1, description="updates on each rollout")


class GrpoTrainer(RLTrainer):
    name = "grpo"
    cfg: GrpoConfig

    @property
    def prompts_per_rollout(self) -> int:
        return self.cfg.prompts_per_rollout

    @property
    def per_prompt(self) -> int:
        return self.cfg.group_size

    def usable(self, rollout: Any, rewards: Any) -> Any:
        """Whole groups only: an advantage is relative to the group, so one NaN drops it."""
        import numpy as np

        groups_ok = np.isfinite(rewards.reshape(-1, self.cfg.group_size)).all(1)
        return np.repeat(groups_ok, self.cfg.group_size)

    def update(self, rollout: Any, rewards: Any) -> dict[str, float]:
        """Steps 4 to 6 on the groups with usable rewards."""
        import torch

        from hookforge_lm.rollouts import completion_logprobs, group_advantages, kl_per_token, masked_mean
        from hookforge_ppo.ppo import clipped_surrogate

        cfg, net = self.cfg, self.net
        mask = rollout.completion_mask
        advantages = group_advantages(rewards, cfg.group_size)[:, None]
        with torch.no_grad():
            old = completion_logprobs(net, rollout)[0]
        reference = self.reference_logprobs(rollout)
        net.train()
        for _ in range(cfg.epochs_per_rollout):
            new, entropy, _ = completion_logprobs(net, rollout)
            surrogate, clipped = clipped_surrogate(new - old, advantages, cfg.clip_range)
            kl = kl_per_token(new, reference)
            loss = masked_mean(surrogate + cfg.kl_coef * kl, mask)
            self.clip_and_step(loss)
        with torch.no_grad():
            return {"loss": float(loss), "kl": float(masked_mean(kl.detach(), mask)),
                    "entropy": float(masked_mean(entropy.detach(), mask)),
                    "clip_fraction": float(masked_mean(clipped.float(), mask)),
                    "response_length": float(mask.sum(1).mean())}


class GrpoLoop(RLLoop):
    """GRPO on a causal_lm policy (see the module docstring)."""

    Config = GrpoConfig
    trainer = GrpoTrainer
