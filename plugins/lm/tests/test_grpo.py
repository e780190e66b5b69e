"""GRPO on a tiny causal LM: group-relative advantages, the per-token KL and the masked mean
against hand-computed cases; a run that changes the policy and logs a rollout per epoch; exact
resume after SIGKILL; rewards that are NaN; the KL limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hookforge
from hookforge.errors import UsageError
from hookforge.record import RunRecord


def test_advantages_kl_and_means_by_hand():
    from hookforge_lm.rollouts import group_advantages, kl_per_token, masked_mean

    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
    advantages = group_advantages(rewards, 2)
    std = math.sqrt(0.5)  # of (1, 0), unbiased
    torch.testing.assert_close(advantages, torch.tensor([0.5 / (std + 1e-4), -0.5 / (std + 1e-4),
                                                         -0.5 / (std + 1e-4), 0.5 / (std + 1e-4),
                                                         0.0, 0.0]))
    logp, ref = torch.tensor([math.log(0.5), math.log(0.2)]), torch.tensor([math.log(0.25), math.log(0.2)])
    delta = math.log(0.25) - math.log(0.5)
    torch.testing.assert_close(kl_per_token(logp, ref), torch.tensor([math.exp(delta) - delta - 1, 0.0]))
    values = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(masked_mean(values, mask)) == pytest.approx((2.0 + 2.0) / 2)


@pytest.fixture
def grpo_config(lm_config):
    def make(**loop):
        config = lm_config(data={"n_train": 64, "n_val": 8, "n_test": 16})
        config["loop"] = {"name": "grpo", "num_rollouts": 4, "prompts_per_rollout": 4,
                          "group_size": 4, "lr": 0.003, "max_new_tokens": 6,
                          "reward": {"name": "length"}, "device": "cpu", **loop}
        return config
    return make


def test_a_grpo_run_changes_the_policy_and_logs_each_rollout(grpo_config, length_reward):
    result = hookforge.train(grpo_config(num_rollouts=2))
    assert result.status == "finished" and result.fit.epochs == 2
    rows = RunRecord.open(result.run_dir).read_metrics()
    names = {r["name"] for r in rows if r["split"] == "train"}
    assert {"reward_mean", "kl", "entropy", "response_length", "clip_fraction", "loss",
            "success_rate", "dropped"} <= names
    kl = [r["value"] for r in rows if r["name"] == "kl"]
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[1] > 0  # the policy moved off the reference
    assert "arith/success_rate" in result.evaluation["test"]


def test_a_killed_grpo_run_resumes_bit_for_bit(grpo_config, killed_and_straight):
    (killed, straight), last = killed_and_straight(grpo_config())
    assert killed == straight
    weights = last("model.safetensors")
    assert weights[0] == weights[1]


def test_nan_rewards_are_dropped_then_stop_the_run(grpo_config, hookforge_register):
    class Broken:
        from hookforge.components import ComponentConfig as Config

        def __init__(self, config=None):
            self.calls = 0

        def __call__(self, inputs, completions):
            return [math.nan] * len(completions)

    hookforge_register("reward", "broken", Broken)
    with pytest.raises(UsageError, match=r"no usable reward .* in 2 rollouts in a row"):
        hookforge.train(grpo_config(reward={"name": "broken"}, max_bad_rollouts=2))


def test_the_kl_limit_stops_the_run_keeping_last(grpo_config, length_reward, hookforge_tmp):
    with pytest.raises(UsageError, match=r"above loop\.kl_limit=1e-09"):
        hookforge.train(grpo_config(kl_limit=1e-9, lr=0.05), run_dir=str(hookforge_tmp / "r"))
    assert (hookforge_tmp / "r" / "checkpoints" / "last" / "training_state.pt").is_file()
    assert np.isfinite(RunRecord.open(hookforge_tmp / "r").read_metrics()[0]["value"])
