"""The ``ppo_lm`` loop: PPO for a ``causal_lm`` policy, as in Ziegler et al. 2019 ("Fine-Tuning
Language Models from Human Preferences") and Ouyang et al. 2022 (InstructGPT).

Written here: TRL 1.16 dropped its PPO trainer, and this loop runs on hookforge's run record and
hookforge-ppo's PPO core (GAE, the clipped losses, minibatches), which it extends to tokens.

One rollout, every step in order:
  1. draw ``rollout_batch_size`` prompts of the training split (seeded by (seed, rollout)) and
     sample one completion of each from the policy;
  2. score each completion with the reward component (a verifier, a reward model, a sum); a
     completion whose reward is NaN or not a number is dropped and counted;
  3. under no gradient: the log-probabilities of the sampled tokens under the policy (old) and
     the frozen reference, and the value head's estimate before each token;
  4. per-token rewards: ``-kl_coef * (log p_old - log p_ref)`` on every token, plus the score on
     the completion's last token (:func:`token_rewards`);
  5. GAE over the tokens of each completion (hookforge-ppo's :func:`~hookforge_ppo.ppo.gae`,
     the completion's end as the episode's end), advantages whitened over the rollout's tokens;
  6. ``ppo_epochs`` passes of shuffled minibatches of completions, each hookforge-ppo's
     :func:`~hookforge_ppo.ppo.ppo_loss` (clipped policy, clipped value, entropy) over the
     minibatch's tokens, gradients clipped to ``max_grad_norm``;
  7. with ``kl_target``, the adaptive KL controller (Ziegler et al.) moves ``kl_coef`` towards
     the target KL per completion.
With a text environment (the ``text_env`` source), step 1 plays ``rollout_batch_size`` whole
episodes instead (seeded by (seed, rollout, episode)): every turn is a row (the history so far
as the prompt, the reply as the completion), step 2's score is the turn's reward from the
environment (per step, and on completion), and step 5 lays each episode's turns end to end so
GAE carries a late reward back to the turns that earned it; an episode with an unusable reward
is dropped whole. The rest is the same.
Each rollout is one ``run.end_epoch``; checkpoints, resume and the KL limit are the shared
ones of :mod:`hookforge_lm.rl`. The value head is a linear layer on the policy's last hidden
state, saved as ``value_head.safetensors`` next to the policy's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge_lm.rl import RLConfig, RLLoop, RLTrainer

if TYPE_CHECKING:  # pragma: no cover
    import torch

VALUE_HEAD_FILE = "value_head.safetensors"


class PpoLMConfig(RLConfig):
    kl_coef: float = Field(0.05, ge=0, description="weight of the per-token KL penalty in the "
                                                   "reward (the starting value with kl_target)")
    kl_target: float | None = Field(None, gt=0, description="adaptive KL: the KL per completion "
                                                            "(nats) kl_coef is steered towards")
    kl_horizon: int = Field(10000, ge=1, description="adaptive KL: completions over which "
                                                     "kl_coef moves by at most 20%")
    rollout_batch_size: int = Field(16, ge=1, description="prompts (one completion each) per "
                                                          "rollout; with a text environment, episodes")
    minibatch_size: int = Field(8, ge=1, description="completions (of episodes: turns) per PPO "
                                                     "minibatch")
    ppo_epochs: int = Field(4, ge=1, description="passes over each rollout")
    gamma: float = Field(1.0, ge=0, le=1, description="discount over tokens")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda over tokens")
    clip_range_vf: float | None = Field(0.2, gt=0, description="how far a value may move from "
                                                               "its rollout estimate (none: free)")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    ent_coef: float = Field(0.0, ge=0, description="weight of the entropy bonus")


# -- the token-level pieces, each as the papers state it -------------------------------------------
def token_rewards(scores: torch.Tensor, logprob: torch.Tensor, ref_logprob: torch.Tensor,
                  mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, KL) per token, (N, T): ``-kl_coef * (log p - log p_ref)`` on every counted token
    (the "k1" estimator, whose sum is the completion's KL in expectation) and the score added
    on the last counted token."""
    import torch

    kl = (logprob - ref_logprob) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores), device=scores.device), last] += scores
    return rewards, kl


def token_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                     lam: float, episode: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over tokens, (N, T) in and out: hookforge-ppo's ``gae`` with time along the counted
    tokens and an episode's last counted token as its end (nothing is bootstrapped past it).

    Without ``episode`` every row is an episode (one completion). With it (the episode of each
    row, rows of one episode in turn order), an episode's turns are laid end to end first: the
    last token of one reply is followed by the first of the next, whose value is that of the
    state after the environment's answer, so credit for a later reward reaches earlier turns.
    The observation tokens between replies are context, not actions: they are not in ``mask``."""
    import torch

    from hookforge_ppo.ppo import gae

    if episode is not None:
        return _episode_advantages(rewards, values, mask, episode, gamma, lam)
    values = values * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    positions = torch.arange(mask.shape[1], device=mask.device)
    dones = (positions[None, :] >= last[:, None]).float()
    advantages, returns = gae((rewards * mask).T, values.T, dones.T,
                              torch.zeros(len(mask), device=mask.device), gamma, lam)
    return advantages.T * mask, returns.T * mask


def _episode_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                        episode: torch.Tensor, gamma: float, lam: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`token_advantages` per episode: gather each episode's counted tokens, turn after
    turn, into one row; GAE on those rows; put the results back where the tokens came from."""
    import torch

    width = mask.shape[1]
    counted = [torch.nonzero(mask[row] > 0).flatten() + row * width for row in range(len(mask))]
    rows_of: dict[int, list[int]] = {}
    for row, owner in enumerate(episode.tolist()):
        rows_of.setdefault(owner, []).append(row)
    tokens = [torch.cat([counted[row] for row in rows]) for rows in rows_of.values()]
    length = max(len(t) for t in tokens)
    index = torch.zeros((len(tokens), length), dtype=torch.long, device=mask.device)
    laid = torch.zeros((len(tokens), length), device=mask.device)
    for k, t in enumerate(tokens):
        index[k, :len(t)] = t
        laid[k, :len(t)] = 1.0
    advantages, returns = token_advantages(rewards.flatten()[index], values.flatten()[index],
                                           laid, gamma, lam)
    into = index[laid > 0]
    out_advantages = torch.zeros(mask.numel(), device=mask.device)
    out_returns = torch.zeros(mask.numel(), device=mask.device)
    out_advantages[into] = advantages[laid > 0]
    out_returns[into] = returns[laid > 0]
    return out_advantages.view_as(mask), out_returns.view_as(mask)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the counted tokens (all completions together)."""
    count = mask.sum().clamp(min=1)
    mean = (values * mask).sum() / count
    variance = (((values - mean) * mask) ** 2).sum() / count
    return (values - mean) * (variance + eps).rsqrt() * mask


def adapt_kl_coef(coef: float, kl_per_completion: float, target: float, completions: int,
                  horizon: int) -> float:
    """Ziegler et al.'s proportional controller: the coefficient grows when the KL is above the
    target and shrinks below it, by at most ``0.2 * completions / horizon`` per rollout."""
    error = max(-0.2, min(0.2, kl_per_completion / target - 1.0))
    return coef * (1.0 + error * completions / horizon)


class PpoLMTrainer(RLTrainer):
    name = "ppo_lm"
    plays_episodes = True
    cfg: PpoLMConfig

    @property
    def prompts_per_rollout(self) -> int:
        return self.cfg.rollout_batch_size

    def build_extra(self) -> None:
        import torch

        hidden = int(self.net.config.hidden_size)
        self.value_head = torch.nn.Linear(hidden, 1).to(self.device)
        # small, zero-mean outputs at the start: the first advantages are the rewards' own
        torch.nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        torch.nn.init.zeros_(self.value_head.bias)
        self.kl_coef = self.cfg.kl_coef
        self.generator = torch.Generator().manual_seed(self.run.seed)

    def extra_modules(self) -> list[Any]:
        return [self.value_head]

    def extra_progress(self) -> dict[str, Any]:
        return {"kl_coef": self.kl_coef, "generator": self.generator.get_state()}

    def restore_progress(self, progress: dict[str, Any]) -> None:
        self.kl_coef = float(progress["kl_coef"])
        self.generator.set_state(progress["generator"])

    def save_extra(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(directory / VALUE_HEAD_FILE))

    def restore_extra(self, directory: Path) -> None:
        from safetensors.torch import load_file

        path = directory / VALUE_HEAD_FILE
        if path.is_file():
            self.value_head.load_state_dict(load_file(str(path), device=str(self.device)))

    def update(self, rollout: Any, scores: torch.Tensor) -> dict[str, float]:
        """Steps 3 to 7 (see the module docstring)."""
        import torch

        from hookforge_lm.rollouts import completion_logprobs, masked_mean, select
        from hookforge_ppo.ppo import minibatches, ppo_loss

        cfg, net = self.cfg, self.net
        mask = rollout.completion_mask
        with torch.no_grad():  # 3: the rollout as it was sampled
            old, _, old_values = completion_logprobs(net, rollout, self.value_head)
            reference = self.reference_logprobs(rollout)
            rewards, kl = token_rewards(scores, old, reference, mask, self.kl_coef)  # 4
            advantages, returns = token_advantages(rewards, old_values, mask, cfg.gamma,
                                                   cfg.gae_lambda, rollout.episode)  # 5
            advantages = masked_whiten(advantages, mask)
        net.train()
        totals: dict[str, float] = {}
        updates = 0
        for _ in range(cfg.ppo_epochs):  # 6
            for index in minibatches(len(scores), cfg.minibatch_size, self.generator):
                index = index.to(self.device)
                batch = select(rollout, index)
                counted = batch.completion_mask > 0
                new, entropy, values = completion_logprobs(net, batch, self.value_head)
                parts = ppo_loss(new[counted], old[index][counted], advantages[index][counted],
                                 values[counted], old_values[index][counted],
                                 returns[index][counted], entropy[counted],
                                 clip_range=cfg.clip_range, clip_range_vf=cfg.clip_range_vf,
                                 vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                                 normalize_advantages=False)
                self.clip_and_step(parts.loss)
                updates += 1
                for key in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl",
                            "clip_fraction"):
                    totals[key] = totals.get(key, 0.0) + float(getattr(parts, key).detach())
        kl_sequence = float(kl.sum(1).mean())
        metrics = {key: value / updates for key, value in totals.items()}
        metrics.update({"kl": float(masked_mean(kl, mask)), "kl_sequence": kl_sequence,
                        "kl_coef": self.kl_coef, "response_length": float(mask.sum(1).mean()),
                        "value_mean": float(masked_mean(old_values, mask))})
        if cfg.kl_target is not None:  # 7
            self.kl_coef = adapt_kl_coef(self.kl_coef, kl_sequence, cfg.kl_target, len(scores),
                                         cfg.kl_horizon)
        return metrics


class PpoLMLoop(RLLoop):
    """PPO on a causal_lm policy (see the module docstring)."""

    Config = PpoLMConfig
    trainer = PpoLMTrainer
