"""The reward model: Bradley-Terry training on preference pairs that it learns (right sums over
wrong ones), pairwise accuracy with its interval, scoring completions from Python and the CLI,
LoRA on a local model, and a preference row missing a field."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.record import RunRecord

TINY = {"arch": "llama", "hidden_size": 64, "layers": 2, "heads": 4, "intermediate": 128}


@pytest.fixture
def prefs(hookforge_tmp):
    rng = random.Random(0)
    rows = []
    for _ in range(400):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"{a}+{b}=", "chosen": str(a + b),
                     "rejected": str((a + b + rng.randint(1, 5)) % 19)})
    path = hookforge_tmp / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def reward_config(tiny_config, prefs):
    def make(model=None, loop=None):
        return tiny_config(
            data={"name": "preferences", "path": str(prefs), "max_length": 16,
                  "split": {"val": 0.15, "test": 0.2}},
            model={"name": "reward_model", "config": TINY,
                   "tokenizer": {"train": {"kind": "bytelevel", "vocab_size": 300,
                                           "split_digits": True}}, **(model or {})},
            loop={"name": "supervised", "epochs": 12, "batch_size": 32, "device": "cpu",
                  "optimizer": {"lr": 0.003}, **(loop or {})})
    return make


def test_learns_which_completion_is_right_and_scores_completions(reward_config, hookforge_cli,
                                                                 hookforge_tmp):
    result = hookforge.train(reward_config())
    rows = RunRecord.open(result.run_dir).read_metrics()
    val_loss = [r["value"] for r in rows if r["split"] == "val" and r["name"] == "loss"]
    assert val_loss[-1] < val_loss[0] < 0.8  # from about log(2): no preference yet
    test = result.evaluation["test"]
    assert test["accuracy"] >= 0.7 and test["accuracy_low"] <= test["accuracy"] <= test["accuracy_high"]
    assert test["mean_chosen"] > test["mean_rejected"]

    model = hookforge.Run.open(result.run_dir).load_model()
    rewards = model.score(["2+3=", "2+3="], ["5", "9"])
    assert rewards.shape == (2,)
    Path("score.jsonl").write_text('{"prompt": "4+4=", "completion": "8"}\n'
                                   '{"prompt": "4+4=", "completion": "3"}\n')
    scored = hookforge_cli("predict", str(result.run_dir), "score.jsonl", "-o", "r.csv")
    assert scored.returncode == 0, scored.stderr
    assert list(pd.read_csv("r.csv").columns) == ["reward"]
    Path("pairs.jsonl").write_text('{"prompt": "1+2=", "chosen": "3", "rejected": "7"}\n')
    compared = hookforge_cli("predict", str(result.run_dir), "pairs.jsonl", "-o", "p.csv")
    assert compared.returncode == 0, compared.stderr
    assert {"chosen_reward", "rejected_reward", "margin"} <= set(pd.read_csv("p.csv").columns)


def test_lora_reward_model_on_a_local_model(reward_config, tiny_model_dir):
    result = hookforge.train(reward_config(
        model={"config": None, "tokenizer": None, "pretrained": str(tiny_model_dir),
               "lora": {"enabled": True, "r": 4}}, loop={"epochs": 1}))
    assert result.status == "finished"
    model = hookforge.Run.open(result.run_dir).load_model()
    trainable = sum(p.numel() for p in model.module.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in model.module.parameters()) / 4


def test_a_preference_row_missing_a_field_is_one_line(reward_config, prefs, hookforge_cli):
    lines = prefs.read_text().splitlines()
    row = json.loads(lines[6])
    del row["rejected"]
    lines[6] = json.dumps(row)
    prefs.write_text("\n".join(lines) + "\n")
    Path("c.yaml").write_text(yaml.safe_dump(reward_config()))
    done = hookforge_cli("train", "-c", "c.yaml")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"hookforge: error: {prefs}: row 7: no text field 'rejected' (a preference row has "
        f"prompt, chosen, rejected)"]
