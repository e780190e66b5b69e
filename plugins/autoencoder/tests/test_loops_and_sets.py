"""The gan_ae and diffusion_ae loops (exact resume after SIGKILL with both optimizers), the h5
source and the gnn parts on jet-like sets, the figure presets and families, the sweep
comparison, predict and evaluate on an interrupted run, and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.record import RunRecord

ROOT = Path(__file__).resolve().parents[3]
TORCH_TESTS = ROOT / "plugins" / "torch" / "tests"  # the Killer hook-only test plugin
TIMING = {"samples_per_s", "epoch_time_s", "peak_memory_mb"}


def _metrics(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["epoch"], r["split"], r["name"], r["value"])
            for r in RunRecord.open(run_dir).read_metrics()
            if r["name"] not in TIMING and r["split"] != "system"]


def _weights(run_dir: Path, tag: str = "last") -> bytes:
    return (run_dir / "checkpoints" / tag / "model.safetensors").read_bytes()


@pytest.fixture
def killer_env(hookforge_installed):
    return hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}}, [TORCH_TESTS])


@pytest.fixture
def digits(tiny_config):
    def make(loop=None, model=None, run=None):
        return tiny_config(
            run={"log_every_n_steps": 5, "system_metrics": False, **(run or {})},
            data={"name": "sklearn", "dataset": "digits", "exclude_classes_from_train": [9]},
            model={"name": "autoencoder", "latent_dim": 8, "input_shape": [1, 8, 8],
                   "encoder": {"name": "mlp", "hidden": [64]},
                   "decoder": {"name": "mlp", "hidden": [64]}, **(model or {})},
            loop={"name": "ae", "epochs": 3, "batch_size": 64, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 0.003}, **(loop or {})},
            evaluators=["reconstruction"])
    return make


@pytest.fixture
def jets(hookforge_tmp):
    """A small jets file from the examples generator (1k jets, 3 classes, masks)."""
    spec = importlib.util.spec_from_file_location("make_jets", ROOT / "examples/data/make_jets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = hookforge_tmp / "jets.h5"
    module.write(path, 600, 20, seed=1)
    return path


LOOPS = {
    "gan_ae": ({"name": "gan_ae", "adversarial": {"warmup_steps": 10, "weight": 0.05}}, {}),
    "diffusion_ae": ({"name": "diffusion_ae", "num_inference_steps": 4},
                     {"decoder": {"name": "denoiser", "hidden": [64], "num_inference_steps": 6}}),
}


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_killed_run_of_each_loop_resumes_bit_for_bit(loop_name, digits, hookforge_cli,
                                                       hookforge_tmp, killer_env):
    loop, model = LOOPS[loop_name]
    config = digits(loop={**loop, "checkpoint_every_n_steps": 10,
                          "scheduler": {"name": "cosine", "warmup_ratio": 0.1}}, model=model)
    Path("c.yaml").write_text(yaml.safe_dump(config))
    straight = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    env = {**killer_env, "HOOKFORGE_TEST_KILL": "25:SIGKILL"}  # mid epoch 2 (18 steps an epoch)
    killed = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "killed", env=env)
    assert killed.returncode == -9, killed.stderr
    resumed = hookforge_cli("train", "--resume", "killed", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _weights(hookforge_tmp / "killed") == _weights(hookforge_tmp / "straight")
    assert _metrics(hookforge_tmp / "killed") == _metrics(hookforge_tmp / "straight")
    names = {row[3] for row in _metrics(hookforge_tmp / "straight")}
    if loop_name == "gan_ae":  # the discriminator's losses, from a step and after its warm-up
        assert {"d_loss", "adv_loss"} <= names
    test = json.loads((hookforge_tmp / "straight" / "evaluation.json").read_text())["test"]
    assert np.isfinite(test["mse"]) and test["mse"] < 1.0


def test_the_diffusion_decoder_reconstructs_and_its_loop_is_checked(digits, hookforge_cli):
    result = hookforge.train(digits(loop={"name": "diffusion_ae", "epochs": 12,
                                          "num_inference_steps": 10},
                                    model={"decoder": {"name": "denoiser", "num_inference_steps": 20}}))
    test = result.evaluation["test"]
    assert test["mse"] < 0.06  # DDIM decoding of the latent, not noise (noise is ~0.3)
    loaded = hookforge.Run.open(result.run_dir).load_model()
    rows = hookforge.Run.open(result.run_dir).load_data().split("test").X[:3]
    first, again = loaded.predict(rows).y_pred, loaded.predict(rows).y_pred
    assert np.array_equal(first, again)  # decoding starts from a fixed-seed noise
    Path("c.yaml").write_text(yaml.safe_dump(digits()))
    for override, message in [
        ("loop.name=diffusion_ae", "loop 'diffusion_ae' trains a denoising decoder; model.decoder is 'mlp'"),
        ("model.decoder=denoiser", "model.decoder 'denoiser' is a diffusion model: train it with "
                                   "loop.name=diffusion_ae"),
        ("model.decoder.num_inference_steps=0", "'num_inference_steps': 0"),
    ]:
        args = ["model.decoder=denoiser", "loop.name=diffusion_ae"] if "=0" in override else []
        done = hookforge_cli("train", "-c", "c.yaml", *args, override)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


def test_gnn_on_jets_from_h5_read_in_chunks_as_in_memory(jets, tiny_config, hookforge_cli):
    def config(in_memory):
        return tiny_config(
            run={"figures": False, "system_metrics": False},
            data={"name": "h5", "path": str(jets), "mask": "mask", "in_memory": in_memory,
                  "chunk_rows": 64, "exclude_classes_from_train": [2]},
            model={"name": "autoencoder", "latent_dim": 6, "scale": "standardize",
                   "encoder": {"name": "gnn", "k": 4, "hidden": [16], "coordinates": [1, 2]},
                   "decoder": {"name": "gnn", "k": 4, "hidden": [16], "expand": [64]}},
            loop={"name": "ae", "epochs": 4, "batch_size": 32, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 0.005}},
            evaluators=["reconstruction"])
    in_memory = hookforge.train(config("always"))
    from_file = hookforge.train(config("never"))
    assert _weights(in_memory.run_dir) == _weights(from_file.run_dir)  # the same batches
    test = from_file.evaluation["test"]
    assert len(test["feature_mse"]) == 3  # per feature of a particle
    assert test["anomaly_auroc"] > 0.75  # three-prong jets were never trained on
    predicted = hookforge_cli("predict", from_file.run_dir, jets, "-o", "out.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv("out.csv")) == 600


def test_the_gnn_encoder_and_chamfer_do_not_depend_on_point_order():
    import torch
    from hookforge_autoencoder.gnn import GNNConfig, GNNEncoder, chamfer

    torch.manual_seed(0)
    encoder = GNNEncoder(GNNConfig(k=3, hidden=[8])).module([10, 3], 4).eval()
    points = torch.randn(2, 10, 3)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False  # a shorter set, padded
    order = torch.randperm(7)
    shuffled = points.clone()
    shuffled[:, :7] = points[:, order]
    with torch.no_grad():
        assert torch.allclose(encoder(points, mask), encoder(shuffled, mask), atol=1e-5)
    prediction = torch.randn(2, 10, 3)
    distance, _ = chamfer(prediction, points, mask)
    assert torch.allclose(distance, chamfer(prediction[:, torch.randperm(10)], shuffled, mask)[0],
                          atol=1e-5)
    assert torch.allclose(chamfer(points, points, mask)[0][0], torch.tensor(0.0), atol=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"features": "feats"}, "no dataset 'feats' (data.features) (did you mean 'features'?); it has: "
                            "features, labels, mask"),
    ({"lengths": True}, "'features' has 600 rows but 'labels' has 599"),
    ({"nan": True}, "NaN or infinite value in 'features' row 5"),
])
def test_bad_h5_files_are_one_line(change, message, jets, tiny_config, hookforge_cli, hookforge_tmp):
    import h5py

    if "lengths" in change or "nan" in change:
        with h5py.File(jets, "r") as handle:
            features, labels = handle["features"][:], handle["labels"][:]
        if "nan" in change:
            features[5, 0, 0] = np.nan
        with h5py.File(jets, "w") as handle:
            handle["features"] = features
            handle["labels"] = labels[:-1] if "lengths" in change else labels
    config = tiny_config(data={"name": "h5", "path": str(jets),
                               "features": change.get("features", "features")},
                         model={"name": "autoencoder", "encoder": "gnn", "decoder": "gnn"})
    Path("c.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "c.yaml")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_figure_presets_and_families(digits, hookforge_tmp):
    full = hookforge.train(digits(model={"latent": "vq"}, run={
        "plots": "full", "plot_families": {"recon": {"every_n_epochs": 1},
                                           "anomaly": {"enabled": False}}}))
    drawn = {p.name for p in (full.run_dir / "figures").iterdir()}
    assert {"recon-epoch_end-e000.png", "recon-epoch_end-e002.png", "recon-final_test.png",
            "latent-final_test.png", "codebook-final_test.png", "metric_loss.png"} <= drawn
    assert not any(name.startswith("anomaly") for name in drawn)
    assert not any(name.startswith("latent-epoch_end") for name in drawn)  # full: every 5 epochs
    minimal = hookforge.train(digits(run={"plots": "minimal"}))
    assert {p.name for p in (minimal.run_dir / "figures").iterdir()} == {"metric_loss.png"}
    off = hookforge.train(digits(run={"figures": False}))
    assert not (off.run_dir / "figures").exists() or not any((off.run_dir / "figures").iterdir())
    with pytest.raises(hookforge.ConfigError, match=r"unknown figure family 'recn' \(did you mean "
                                                    r"'recon'\?\)"):
        hookforge.train(digits(run={"plot_families": {"recn": {"enabled": True}}}))


def test_a_latent_sweep_writes_its_comparison(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("search", "-c", ROOT / "configs" / "autoencoder" / "compare_vq_vs_none.yaml",
                         "loop.epochs=2", f"run.output_dir={hookforge_tmp / 'out'}")
    assert done.returncode == 0, done.stderr
    study = hookforge_tmp / "out" / "hpo" / "ae-vq-vs-none"
    table = (study / "comparison.md").read_text().splitlines()
    assert table[2].startswith("| # | model.latent | state | val/mse | val/code_usage")
    assert table[4].startswith("| 0 | none | complete") and table[5].startswith("| 1 | vq | complete")
    assert (study / "comparison.png").stat().st_size > 1000


def test_predict_codes_and_evaluate_an_interrupted_run(digits, hookforge_cli, hookforge_tmp,
                                                       killer_env):
    Path("c.yaml").write_text(yaml.safe_dump(digits(model={"latent": {"name": "vq",
                                                                      "codebook_size": 16}})))
    env = {**killer_env, "HOOKFORGE_TEST_KILL": "25:SIGINT"}
    assert hookforge_cli("train", "-c", "c.yaml", "--run-dir", "r", env=env).returncode == 130
    rows = hookforge.Run.open(hookforge_tmp / "r").load_data().split("test").X[:6]
    pd.DataFrame(rows).to_csv("rows.csv", index=False)
    predicted = hookforge_cli("predict", "r", "rows.csv", "-o", "out.csv")
    assert predicted.returncode == 0, predicted.stderr
    out = pd.read_csv("out.csv")
    assert {"reconstruction_error", "anomaly_score", "code"} <= set(out.columns)
    assert out["code"].between(0, 15).all()
    evaluated = hookforge_cli("evaluate", "r", "--split", "test")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mse=" in evaluated.stdout and "code_usage=" in evaluated.stdout


def test_a_third_party_encoder_package_is_chosen_by_name(digits, hookforge_cli, hookforge_installed,
                                                         hookforge_tmp):
    package = hookforge_tmp / "pkg"
    package.mkdir()
    (package / "lab_parts.py").write_text(
        "import math\n"
        "from hookforge import ComponentConfig\n\n"
        "class WideEncoder:\n"
        "    '''One wide linear layer (a lab's own encoder).'''\n\n"
        "    class Config(ComponentConfig):\n"
        "        width: int = 32\n\n"
        "    def __init__(self, config):\n"
        "        self.config = config\n\n"
        "    def module(self, shape, latent_dim):\n"
        "        import torch\n"
        "        return torch.nn.Sequential(torch.nn.Flatten(),\n"
        "            torch.nn.Linear(math.prod(shape), self.config.width), torch.nn.ReLU(),\n"
        "            torch.nn.Linear(self.config.width, latent_dim))\n")
    env = hookforge_installed({"hookforge.encoders": {"wide": "lab_parts:WideEncoder"}}, [package],
                              name="lab-parts")
    Path("c.yaml").write_text(yaml.safe_dump(digits()))
    shown = hookforge_cli("plugins", "show", "encoder", "wide", env=env)
    assert shown.returncode == 0 and "width" in shown.stdout, shown.stderr
    done = hookforge_cli("train", "-c", "c.yaml", "model.encoder=wide", "model.encoder.width=48",
                         "--run-dir", "r", env=env)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((hookforge_tmp / "r" / "config.yaml").read_text())
    assert config["model"]["encoder"] == {"name": "wide", "width": 48}
