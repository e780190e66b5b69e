"""The autoencoder end to end: parts by name (and one from a third-party package), the ae loop,
the reconstruction evaluator with code usage and anomaly AUROC, predict, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import hookforge
from hookforge import ComponentConfig, registry

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ae_config(tiny_config):
    def make(model=None, loop=None, data=None):
        return tiny_config(
            data={"name": "sklearn", "dataset": "digits", "exclude_classes_from_train": [9],
                  **(data or {})},
            model={"name": "autoencoder", "latent_dim": 8, **(model or {})},
            loop={"name": "ae", "epochs": 4, "batch_size": 64, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 0.003}, **(loop or {})},
            evaluators=["reconstruction"])
    return make


def test_digits_reconstruct_and_detect_the_held_out_digit(ae_config, hookforge_cli, hookforge_tmp):
    Path("c.yaml").write_text(yaml.safe_dump(ae_config(loop={"epochs": 12})))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "r")
    assert done.returncode == 0, done.stderr
    test = json.loads((hookforge_tmp / "r" / "evaluation.json").read_text())["test"]
    assert test["mse"] < 0.05 and len(test["feature_mse"]) == 64
    assert test["anomaly_auroc"] > 0.6  # digit 9 was never seen in training
    splits = json.loads((hookforge_tmp / "r" / "splits.json").read_text())
    assert splits["sizes"]["train"] < 0.75 * 1797  # the 9s left the train split
    pd.DataFrame(hookforge.Run.open(hookforge_tmp / "r").load_data().split("test").X[:5]).to_csv(
        "rows.csv", index=False)
    predicted = hookforge_cli("predict", "r", "rows.csv", "-o", "out.csv")
    assert predicted.returncode == 0, predicted.stderr
    out = pd.read_csv("out.csv")
    assert len(out) == 5 and {"reconstruction_error", "anomaly_score", "latent_0"} <= set(out.columns)


@pytest.mark.parametrize("model, expected", [
    ({"latent": {"name": "vq", "codebook_size": 16}}, {"perplexity", "code_usage"}),
    ({"latent": {"name": "vae", "warmup_steps": 10}}, set()),
    ({"latent": "linear"}, set()),
    ({"encoder": "conv", "decoder": "conv"}, set()),
])
def test_parts_train_and_evaluate(model, expected, ae_config):
    result = hookforge.train(ae_config(model=model))
    test = result.evaluation["test"]
    assert {"mse", "mae", "anomaly_auroc"} | expected <= set(test)
    if "code_usage" in expected:
        assert 0 < test["code_usage"] <= 1 and 1 <= test["perplexity"] <= 16
        loaded = hookforge.Run.open(result.run_dir).load_model()  # codebook buffers in the checkpoint
        assert loaded.predict(result_inputs(result)).codes is not None


def result_inputs(result):
    return hookforge.Run.open(result.run_dir).load_data().split("test").X[:4]


def test_a_third_party_encoder_and_a_part_that_does_not_fit(ae_config):
    class Tiny:
        """An encoder from another package: one linear layer."""

        class Config(ComponentConfig):
            wrong_size: bool = False

        def __init__(self, config):
            self.config = config

        def module(self, shape, latent_dim):
            import math

            import torch

            out = latent_dim + 1 if self.config.wrong_size else latent_dim
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(shape), out))

    with registry.temporary("encoder", "tiny", Tiny):
        result = hookforge.train(ae_config(model={"encoder": "tiny"}))
        assert result.status == "finished"
        with pytest.raises(hookforge.ConfigError, match=r"model.encoder 'tiny' outputs \(9,\).*"
                                                          r"latent_dim=8"):
            hookforge.train(ae_config(model={"encoder": {"name": "tiny", "wrong_size": True}}))


@pytest.mark.parametrize("override, message", [
    ("model.latent.dim=4", "model.latent.dim=4 (the vq codebook's dim) does not match model.latent_dim=8"),
    ("model.input_shape=[2,5,5]", "holds 50 values; the data has 64 features"),
    ("data.exclude_classes_from_train=[11]", "lists '11', which is not a class"),
    ("model.encoder=convv", "unknown encoder 'convv' (did you mean 'conv'?)"),
])
def test_bad_input_is_one_line(override, message, ae_config, hookforge_cli):
    config = ae_config(model={"latent": "vq"} if "latent.dim" in override else None)
    Path("c.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "c.yaml", override)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_conv_on_flat_data_says_so(tiny_config, hookforge_cli):
    done = hookforge_cli("train", "--data", "sklearn", "data.dataset=wine", "--model", "autoencoder",
                         "model.encoder=conv")
    assert done.returncode == 2 and "conv needs image-shaped inputs" in done.stderr


def test_a_sweep_over_latent_spaces(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("search", "-c", ROOT / "configs" / "autoencoder" / "digits.yaml",
                         "model.latent=none,linear,vq", "loop.epochs=2", "searcher.metric=val/mse",
                         f"run.output_dir={hookforge_tmp / 'out'}")
    assert done.returncode == 0, done.stderr
    trials = json.loads((hookforge_tmp / "out" / "hpo" / "ae-digits" / "trials.json").read_text())
    assert [t["params"]["model.latent"] for t in trials] == ["none", "linear", "vq"]
    assert "val/code_usage" in trials[2]["metrics"]
