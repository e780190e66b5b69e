"""PPO on a tiny causal LM: the per-token rewards, GAE over tokens, whitening and the adaptive
KL controller against hand-computed cases; a two-rollout run that changes the policy; exact
resume after SIGKILL; NaN rewards dropped per completion; a reference whose tokenizer differs."""

from __future__ import annotations

import math

import pytest
import torch

import hookforge
from hookforge.errors import ConfigError
from hookforge.record import RunRecord


def test_token_rewards_and_gae_by_hand():
    from hookforge_lm.ppo_lm import token_advantages, token_rewards

    scores = torch.tensor([1.0, 0.5])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    logp = torch.tensor([[-1.0, -2.0, -1.0], [-0.5, -1.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.0, -0.5], [-0.5, -2.0, -1.0]])
    rewards, kl = token_rewards(scores, logp, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, -0.5], [0.0, 1.0, 0.0]]))
    # -0.1 x KL on every token, the score on the last counted one (row 2 ends at its 2nd token)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.0, 1.05], [0.0, 0.4, 0.0]]))

    values = torch.tensor([[0.2, 0.3, 0.4], [0.1, 0.6, 9.0]])  # 9.0: past the end, ignored
    advantages, returns = token_advantages(rewards, values, mask, gamma=1.0, lam=0.9)
    # row 1: delta_2 = 1.05 - 0.4; delta_1 = 0 + 0.4 - 0.3; delta_0 = -0.05 + 0.3 - 0.2
    a2 = 0.65
    a1 = 0.1 + 0.9 * a2
    a0 = 0.05 + 0.9 * a1
    # row 2: delta_1 = 0.4 - 0.6 (the end: nothing bootstrapped); delta_0 = 0.6 - 0.1
    b1 = -0.2
    b0 = 0.5 + 0.9 * b1
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2], [b0, b1, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.2, a1 + 0.3, a2 + 0.4],
                                                      [b0 + 0.1, b1 + 0.6, 0.0]]))


def test_whitening_and_the_adaptive_kl_controller_by_hand():
    from hookforge_lm.ppo_lm import adapt_kl_coef, masked_whiten

    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 50.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    expected = (torch.tensor([[1.0, 2.0, 3.0], [4.0, 2.5, 2.5]]) - 2.5) / math.sqrt(1.25)
    torch.testing.assert_close(masked_whiten(values, mask), expected * mask)
    # above the target: +20% x 16/160 at most; below: -20% x 16/160; on target: unchanged
    assert adapt_kl_coef(0.1, 12.0, 6.0, 16, 160) == pytest.approx(0.1 * 1.02)
    assert adapt_kl_coef(0.1, 3.0, 6.0, 16, 160) == pytest.approx(0.1 * 0.98)
    assert adapt_kl_coef(0.1, 6.6, 6.0, 16, 160) == pytest.approx(0.1 * (1 + 0.1 * 0.1))


@pytest.fixture
def ppo_config(lm_config):
    def make(**loop):
        config = lm_config(data={"n_train": 64, "n_val": 8, "n_test": 16})
        config["loop"] = {"name": "ppo_lm", "num_rollouts": 3, "rollout_batch_size": 8,
                          "minibatch_size": 4, "ppo_epochs": 2, "lr": 0.003, "max_new_tokens": 6,
                          "reward": {"name": "length"}, "device": "cpu", **loop}
        return config
    return make


def test_a_two_rollout_ppo_run_changes_the_policy(ppo_config, length_reward):
    result = hookforge.train(ppo_config(num_rollouts=2, kl_target=0.5))
    assert result.status == "finished" and result.fit.epochs == 2
    rows = RunRecord.open(result.run_dir).read_metrics()
    names = {r["name"] for r in rows if r["split"] == "train"}
    assert {"reward_mean", "kl", "kl_sequence", "kl_coef", "entropy", "response_length",
            "clip_fraction", "value_loss", "policy_loss", "approx_kl", "success_rate",
            "dropped"} <= names
    kl = [r["value"] for r in rows if r["name"] == "kl_sequence"]
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and abs(kl[1]) > 1e-4  # it moved off the reference
    coef = [r["value"] for r in rows if r["name"] == "kl_coef"]
    assert coef[0] == 0.05 and coef[1] < 0.05  # KL below the target: the coefficient shrinks
    for tag in ("last", "best"):
        assert (result.run_dir / "checkpoints" / tag / "value_head.safetensors").is_file()
    assert "arith/success_rate" in result.evaluation["test"]


def test_a_killed_ppo_run_resumes_bit_for_bit(ppo_config, killed_and_straight):
    (killed, straight), last = killed_and_straight(ppo_config(kl_target=0.5))
    assert killed == straight
    for weights in ("model.safetensors", "value_head.safetensors"):
        files = last(weights)
        assert files[0] == files[1], weights


def test_nan_rewards_drop_only_their_completions(ppo_config, hookforge_register):
    class HalfBroken:
        from hookforge.components import ComponentConfig as Config

        def __init__(self, config=None):
            pass

        def __call__(self, inputs, completions):
            return [math.nan if i % 2 else "one" if i % 4 == 2 else 1.0
                    for i in range(len(completions))]

    hookforge_register("reward", "half", HalfBroken)
    result = hookforge.train(ppo_config(num_rollouts=1, reward={"name": "half"}))
    assert result.status == "finished"
    rows = {r["name"]: r["value"] for r in RunRecord.open(result.run_dir).read_metrics()}
    assert rows["dropped"] == 6 and rows["reward_mean"] == 1.0  # 4 NaN, 2 not a number


def test_a_reference_with_another_tokenizer_is_refused(ppo_config, length_reward, tiny_model_dir,
                                                       hookforge_tmp):
    with pytest.raises(ConfigError, match=r"loop\.reference: the tokenizer of .* differs"):
        hookforge.train(ppo_config(reference=str(tiny_model_dir)))
    with pytest.raises(ConfigError, match=r"loop\.reference: directory .*nowhere does not exist"):
        hookforge.train(ppo_config(reference=str(hookforge_tmp / "nowhere")))
