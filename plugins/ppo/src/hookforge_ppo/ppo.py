"""The core of PPO (Schulman et al. 2017), independent of where observations come from.

Written here rather than taken from a library: stable-baselines3 and CleanRL tie the algorithm to
their own environment and policy classes, and TRL 1.16 dropped its PPO trainer, so the PPO for
language models (a later plugin) would have nothing to build on. Everything an update needs is in
these functions, each one step of the algorithm as the papers and the references state it:

- :func:`schedule` - constants or linear schedules in rl-zoo3's spelling (``lin_0.001``);
- :func:`gae` - generalised advantage estimation (Schulman et al. 2016) over a rollout;
- :func:`bootstrap_truncated` - a time-limit truncation is not a termination: its reward is
  increased by ``gamma * V(final observation)`` (as stable-baselines3 does), then it ends the
  episode like any other;
- :func:`minibatches` - shuffled minibatch indices for one epoch, from a seeded generator;
- :func:`clipped_surrogate` - the clipped policy objective per element (shared with the RL loops
  for language models);
- :func:`ppo_loss` - the clipped surrogate, the (optionally clipped) value loss, the entropy bonus,
  and the statistics every PPO reports (approx. KL, clip fraction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from hookforge.errors import ConfigError


def schedule(value: float | str, name: str) -> Callable[[float], float]:
    """``value`` as a function of the progress remaining (1 at the start, 0 at the end): a
    constant, or ``lin_X`` (rl-zoo3): X times the progress remaining, linearly to 0."""
    if isinstance(value, (int, float)):
        constant = float(value)
        return lambda remaining: constant
    text = str(value).strip()
    if text.startswith("lin_"):
        try:
            start = float(text[4:])
        except ValueError:
            start = math.nan
        if math.isfinite(start) and start >= 0:
            return lambda remaining: start * remaining
    try:
        constant = float(text)
    except ValueError:
        raise ConfigError(f"loop.{name}: '{value}' is not a number nor a schedule (lin_0.001: "
                          f"linear from 0.001 to 0)") from None
    return lambda remaining: constant


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout of shape (T, N): ``dones[t]`` is 1 where the episode
    ended with step t (terminated or truncated; truncations already bootstrapped into the
    reward), ``last_value`` the value of the observation after the last step."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def bootstrap_truncated(rewards: torch.Tensor, truncated: torch.Tensor,
                        final_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """``rewards + gamma * V(final obs)`` where an episode was cut by a time limit (not where it
    terminated: there is no future after a termination)."""
    return rewards + gamma * final_values * truncated


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of shuffled minibatch indices over ``n`` samples."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


@dataclass
class LossParts:
    """The loss and what PPO implementations report about an update."""

    loss: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def clipped_surrogate(log_ratio: torch.Tensor, advantages: torch.Tensor,
                      clip_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy objective per element, to minimise: ``-min(r A, clip(r, 1 - eps,
    1 + eps) A)`` with ``r = exp(log_ratio)``, and where the ratio left the clip range (for the
    clip fraction). Elements are actions here, tokens for language models (hookforge-lm)."""
    ratio = log_ratio.exp()
    surrogate = advantages * ratio
    clipped = advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return -torch.min(surrogate, clipped), ((ratio - 1.0).abs() > clip_range)


def ppo_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
             new_value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor,
             entropy: torch.Tensor, *, clip_range: float, clip_range_vf: float | None,
             vf_coef: float, ent_coef: float, normalize_advantages: bool = True) -> LossParts:
    """The PPO objective for one minibatch (to minimise)."""
    if normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    per_action, clipped_mask = clipped_surrogate(log_ratio, advantages, clip_range)
    policy_loss = per_action.mean()
    if clip_range_vf is not None:  # the value moves at most clip_range_vf from the old estimate
        new_value = old_value + torch.clamp(new_value - old_value, -clip_range_vf, clip_range_vf)
    value_loss = 0.5 * ((returns - new_value) ** 2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    with torch.no_grad():
        # the low-variance estimator of KL(old || new) (Schulman's "approximating KL" note)
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = clipped_mask.float().mean()
    return LossParts(loss, policy_loss.detach(), value_loss.detach(), entropy_mean.detach(),
                     approx_kl, clip_fraction)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 no better than the mean."""
    variance = float(target.var())
    return math.nan if variance == 0 else 1.0 - float((target - predicted).var()) / variance
