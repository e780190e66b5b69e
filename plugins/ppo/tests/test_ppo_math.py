"""PPO's math against hand-computed cases: GAE, the truncation bootstrap, the clipped surrogate
and value losses, schedules, minibatches."""

from __future__ import annotations

import math

import pytest
import torch

from hookforge.errors import ConfigError
from hookforge_ppo.ppo import bootstrap_truncated, explained_variance, gae, minibatches, ppo_loss, schedule


def test_gae_matches_a_hand_computed_rollout():
    # one env, three steps, the episode ends after step 1 (index 1)
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    last_value = torch.tensor([2.0])
    gamma, lam = 0.9, 0.8
    # step 2: delta = 3 + 0.9*2 - 1.5 = 3.3; A2 = 3.3
    # step 1: ends the episode: delta = 2 - 1 = 1; A1 = 1
    # step 0: delta = 1 + 0.9*1.0 - 0.5 = 1.4; A0 = 1.4 + 0.9*0.8*1 = 2.12
    advantages, returns = gae(rewards, values, dones, last_value, gamma, lam)
    assert advantages.squeeze(1).tolist() == pytest.approx([2.12, 1.0, 3.3])
    assert returns.squeeze(1).tolist() == pytest.approx([2.62, 2.0, 4.8])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.zeros(3, 1)
    advantages, _ = gae(rewards, values, torch.zeros(3, 1), torch.tensor([10.0]), 0.5, 1.0)
    assert advantages.squeeze(1).tolist() == pytest.approx([1 + 0.5 + 0.25 + 0.125 * 10,
                                                            1 + 0.5 + 0.25 * 10, 1 + 0.5 * 10])


def test_a_truncated_episode_is_bootstrapped_and_a_terminated_one_is_not():
    rewards = torch.tensor([1.0, 1.0, 1.0])
    truncated = torch.tensor([1.0, 0.0, 0.0])  # env 0 hit its time limit; env 1 terminated
    final_values = torch.tensor([4.0, 4.0, 0.0])
    assert bootstrap_truncated(rewards, truncated, final_values, 0.5).tolist() == [3.0, 1.0, 1.0]
    # after the bootstrap the step ends the episode: GAE adds nothing from the next episode
    advantages, _ = gae(torch.tensor([[3.0]]), torch.tensor([[1.0]]), torch.tensor([[1.0]]),
                        torch.tensor([100.0]), 0.5, 0.9)
    assert float(advantages) == pytest.approx(2.0)


def test_the_surrogate_is_clipped_in_the_direction_of_the_advantage():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.8, 0.2]))  # ratios 1.6 and 0.4
    advantages = torch.tensor([1.0, -1.0])
    zeros = torch.zeros(2)
    parts = ppo_loss(new, old, advantages, zeros, zeros, zeros, torch.zeros(2), clip_range=0.2,
                     clip_range_vf=None, vf_coef=0.5, ent_coef=0.0, normalize_advantages=False)
    # min(1.6*1, 1.2*1) = 1.2 and min(0.4*-1, 0.8*-1) = -0.8: mean 0.2, loss -0.2
    assert float(parts.policy_loss) == pytest.approx(-0.2)
    assert float(parts.clip_fraction) == 1.0
    ratio = torch.tensor([1.6, 0.4])
    assert float(parts.approx_kl) == pytest.approx(float(((ratio - 1) - ratio.log()).mean()))


def test_value_clipping_and_the_loss_weights():
    zero = torch.zeros(1)
    parts = ppo_loss(zero, zero, zero, torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([4.0]),
                     torch.tensor([0.7]), clip_range=0.2, clip_range_vf=0.5, vf_coef=0.5,
                     ent_coef=0.1, normalize_advantages=False)
    # the new value 3 is clipped to 1 + 0.5 = 1.5: 0.5 * (4 - 1.5)^2 = 3.125
    assert float(parts.value_loss) == pytest.approx(3.125)
    assert float(parts.loss) == pytest.approx(0.5 * 3.125 - 0.1 * 0.7)
    unclipped = ppo_loss(zero, zero, zero, torch.tensor([3.0]), torch.tensor([1.0]),
                         torch.tensor([4.0]), zero, clip_range=0.2, clip_range_vf=None,
                         vf_coef=0.5, ent_coef=0.0, normalize_advantages=False)
    assert float(unclipped.value_loss) == pytest.approx(0.5)


def test_schedules_in_rl_zoo_spelling():
    assert schedule("lin_0.001", "learning_rate")(1.0) == pytest.approx(0.001)
    assert schedule("lin_0.001", "learning_rate")(0.25) == pytest.approx(0.00025)
    assert schedule(0.2, "clip_range")(0.1) == 0.2 and schedule("0.3", "clip_range")(0.0) == 0.3
    with pytest.raises(ConfigError, match=r"lin_0\.001: linear"):
        schedule("linear_0.1", "learning_rate")


def test_minibatches_cover_every_sample_once_and_are_seeded():
    first = list(minibatches(10, 4, torch.Generator().manual_seed(3)))
    again = list(minibatches(10, 4, torch.Generator().manual_seed(3)))
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_explained_variance():
    target = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(torch.full((3,), 2.0), target) == pytest.approx(0.0)
    assert math.isnan(explained_variance(target, torch.ones(3)))
