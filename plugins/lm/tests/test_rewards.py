"""Reward components for RL: a task's verifier as the reward, a trained reward model's score, and a
weighted combination; a completion that cannot be scored gets NaN (the RL loop drops it)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import hookforge
from hookforge import registry


def rows(*items):
    return pd.DataFrame([{"prompt": p, "family": f, "data": json.dumps(d) if d is not None else None}
                         for p, f, d in items])


def test_the_verifier_is_a_reward_and_nan_marks_what_it_cannot_score(hookforge_register):
    class Crashes:
        from hookforge_lm.tasks.base import TaskOptions as Config

        def __init__(self, options=None):
            pass

        def verify(self, data, answer):
            raise RuntimeError("bug")

    hookforge_register("task", "crashes", Crashes)
    reward = registry.load("reward", "verifier")()
    inputs = rows(("3+4=", "arith", {"result": 7}), ("3+4=", "arith", {"result": 7}),
                  ("hi", None, None), ("x", "crashes", {}),
                  ("SAT", "sat", {"n_vars": 2, "clauses": [[1, 2], [-1, 2]]}))
    scores = reward(inputs, ["7", "8", "anything", "y", "-1 2"])
    assert scores[:2].tolist() == [1.0, 0.0] and scores[4] == 1.0
    assert math.isnan(scores[2]) and math.isnan(scores[3])
    partial = registry.load("reward", "verifier")(
        registry.load("reward", "verifier").Config(families={"sat": {"partial_credit": True}}))
    assert partial(inputs.iloc[[4]], ["1 -2"])[0] == pytest.approx(0.5)


def test_a_reward_model_run_scores_and_combines_with_the_verifier(tiny_config, hookforge_tmp):
    pairs = [{"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}
             for a in range(6) for b in range(6)]
    (hookforge_tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    trained = hookforge.train(tiny_config(
        data={"name": "preferences", "path": "p.jsonl", "max_length": 12,
              "split": {"val": 0.2, "test": 0.0}},
        model={"name": "reward_model", "config": {"arch": "llama", "hidden_size": 32, "layers": 1,
                                                   "heads": 2},
               "tokenizer": {"train": {"kind": "bytelevel", "vocab_size": 280, "split_digits": True}}},
        loop={"name": "supervised", "epochs": 1, "batch_size": 8, "device": "cpu"}))
    model_reward = registry.load("reward", "model")
    reward = model_reward(model_reward.Config(run=str(trained.run_dir)))
    inputs = rows(("2+2=", "arith", {"result": 4}), ("2+2=", "arith", {"result": 4}))
    learned = reward(inputs, ["4", "5"])
    assert learned.shape == (2,) and np.isfinite(learned).all()
    combined_cls = registry.load("reward", "combined")
    combined = combined_cls(combined_cls.Config(parts=[
        {"name": "verifier", "weight": 2.0}, {"name": "model", "run": str(trained.run_dir),
                                              "weight": 0.5}]))
    total = combined(inputs, ["4", "5"])
    np.testing.assert_allclose(total, [2.0, 0.0] + 0.5 * learned)
    from hookforge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"reward\.parts\[0\]"):
        combined_cls(combined_cls.Config(parts=[{"name": "verifyer"}]))
