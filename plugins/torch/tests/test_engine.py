"""The supervised loop end to end: accuracy, determinism, exact resume after SIGKILL and Ctrl-C,
AMP, schedules, early stopping, checkpoints, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import hookforge
from hookforge.errors import CheckpointError, DataError
from hookforge.record import RunRecord

ROOT = Path(__file__).resolve().parents[3]
TIMING = {"samples_per_s", "epoch_time_s", "peak_memory_mb"}


def _metrics(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["epoch"], r["split"], r["name"], r["value"])
            for r in RunRecord.open(run_dir).read_metrics() if r["name"] not in TIMING]


def _weights(run_dir: Path, tag: str = "last") -> bytes:
    return (run_dir / "checkpoints" / tag / "model.safetensors").read_bytes()


def test_mlp_quickstart_reaches_95_percent_on_digits(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("train", "-c", ROOT / "configs" / "mlp_quickstart.yaml", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((hookforge_tmp / "r" / "evaluation.json").read_text())
    assert evaluation["test"]["accuracy"] > 0.95
    record = RunRecord.open(hookforge_tmp / "r")
    names = {(r["split"], r["name"]) for r in record.read_metrics()}
    assert {("train", "loss"), ("train", "lr"), ("val", "loss"), ("val", "accuracy"),
            ("train", "samples_per_s"), ("train", "epoch_time_s"),
            ("train", "peak_memory_mb")} <= names
    for figure in ("metric_loss.png", "metric_accuracy.png", "confusion_matrix_test.png"):
        assert (hookforge_tmp / "r" / "figures" / figure).exists(), figure
    best = json.loads((hookforge_tmp / "r" / "checkpoints" / "best" / "checkpoint.json").read_text())
    assert best["monitor"] == "val/accuracy"
    assert set(best["files"]) == {"model.safetensors"}
    last = json.loads((hookforge_tmp / "r" / "checkpoints" / "last" / "checkpoint.json").read_text())
    assert set(last["files"]) == {"model.safetensors", "training_state.pt"}


def test_same_seed_gives_identical_runs(iris_mlp):
    config = iris_mlp(deterministic=True)
    a, b = hookforge.train(config), hookforge.train(config)
    assert _metrics(a.run_dir) == _metrics(b.run_dir)
    assert _weights(a.run_dir) == _weights(b.run_dir)
    c = hookforge.train(config, ["run.seed=1"])
    assert _weights(c.run_dir) != _weights(a.run_dir)


@pytest.mark.parametrize("signal_name, exit_code, status", [("SIGKILL", -9, "running"),
                                                             ("SIGINT", 130, "interrupted")])
def test_killed_run_resumes_bit_for_bit(signal_name, exit_code, status, iris_mlp, hookforge_cli,
                                        hookforge_tmp, killer_env):
    config = iris_mlp(checkpoint_every_n_steps=4, scheduler={"name": "cosine", "warmup_ratio": 0.2})
    path = hookforge_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    straight = hookforge_cli("train", "-c", path, "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr

    env = {**killer_env, "HOOKFORGE_TEST_KILL": f"10:{signal_name}"}  # mid-epoch 2 (7 steps/epoch)
    killed = hookforge_cli("train", "-c", path, "--run-dir", "killed", env=env)
    assert killed.returncode == exit_code, killed.stderr
    record = RunRecord.open(hookforge_tmp / "killed")
    assert record.status == status
    last = json.loads((hookforge_tmp / "killed" / "checkpoints" / "last" / "checkpoint.json").read_text())
    assert last["step"] == (8 if signal_name == "SIGKILL" else 10)  # SIGINT saves 'last' first

    resumed = hookforge_cli("train", "--resume", "killed", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert record.status == "finished" and len(record.info()["resumes"]) == 1
    assert _weights(hookforge_tmp / "killed") == _weights(hookforge_tmp / "straight")
    assert _weights(hookforge_tmp / "killed", "best") == _weights(hookforge_tmp / "straight", "best")
    assert _metrics(hookforge_tmp / "killed") == _metrics(hookforge_tmp / "straight")
    evaluation = json.loads((hookforge_tmp / "killed" / "evaluation.json").read_text())
    assert evaluation == json.loads((hookforge_tmp / "straight" / "evaluation.json").read_text())


def test_predict_and_evaluate_work_on_an_interrupted_run(iris_mlp, hookforge_cli, hookforge_tmp,
                                                         killer_env):
    path = hookforge_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(iris_mlp()))
    env = {**killer_env, "HOOKFORGE_TEST_KILL": "10:SIGINT"}
    assert hookforge_cli("train", "-c", path, "--run-dir", "r", env=env).returncode == 130
    inputs = hookforge_tmp / "inputs.csv"
    inputs.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
                      "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    predicted = hookforge_cli("predict", "r", inputs, "-o", "preds.csv")
    assert predicted.returncode == 0, predicted.stderr
    lines = (hookforge_tmp / "preds.csv").read_text().splitlines()
    assert lines[0].startswith("prediction,prob_0") and len(lines) == 3
    evaluated = hookforge_cli("evaluate", "r", "--split", "val")
    assert evaluated.returncode == 0 and evaluated.stdout.startswith("val (n=")
    assert "accuracy=" in evaluated.stdout


def test_amp_bfloat16_on_cpu_and_accumulation_clipping_class_weights(iris_mlp):
    result = hookforge.train(iris_mlp(amp={"enabled": True, "dtype": "bfloat16"},
                                      gradient_accumulation=3, grad_clip=1.0,
                                      class_weights="balanced", epochs=3))
    assert result.status == "finished"
    record = RunRecord.open(result.run_dir)
    losses = [r["value"] for r in record.read_metrics() if r["name"] == "loss"]
    assert losses and all(v == v for v in losses)
    assert result.fit.steps == 3 * 3  # ceil(7 batches / 3) steps per epoch
    trainer_event = next(e for e in record.read_events() if e["event"] == "trainer")
    assert trainer_event["amp"] == "bfloat16"


@pytest.mark.parametrize("name", ["constant", "linear", "cosine", "cosine_with_restarts"])
def test_schedulers_warm_up_then_follow_their_shape(name, iris_mlp):
    result = hookforge.train(iris_mlp(scheduler={"name": name, "warmup_steps": 5}, epochs=2))
    lrs = [r["value"] for r in RunRecord.open(result.run_dir).read_metrics() if r["name"] == "lr"]
    assert len(lrs) == 14
    assert lrs[:5] == sorted(lrs[:5]) and lrs[4] == pytest.approx(0.01)  # linear warmup to the peak
    if name == "linear":
        assert lrs[-1] < lrs[6] < lrs[5]
    if name == "constant":
        assert all(lr == pytest.approx(0.01) for lr in lrs[5:])


def test_cosine_ends_at_its_floor(iris_mlp):
    result = hookforge.train(iris_mlp(scheduler={"name": "cosine", "warmup_steps": 2,
                                                 "min_lr_ratio": 0.1}, epochs=2))
    lrs = [r["value"] for r in RunRecord.open(result.run_dir).read_metrics() if r["name"] == "lr"]
    assert min(lrs[2:]) == pytest.approx(0.001, rel=0.05)  # 10% of the peak 0.01, never below
    assert lrs[-1] == pytest.approx(0.001, rel=0.05)


def test_early_stopping_stops_and_keeps_the_best(iris_mlp):
    result = hookforge.train(iris_mlp(epochs=30, optimizer={"name": "sgd", "lr": 1e-6},
                                      early_stopping={"metric": "val/accuracy", "patience": 2}))
    assert result.fit.stop_reason == "early_stopping"
    assert result.fit.epochs < 30
    info = RunRecord.open(result.run_dir).info()
    assert info["stop_reason"] == "early_stopping"


def test_a_run_killed_after_early_stopping_resumes_without_training_more(
        iris_mlp, hookforge_cli, hookforge_tmp, killer_env):
    """Killed after the stop decision and the final evaluation: the resumed run trains no extra
    epoch and records the evaluation once."""
    config = iris_mlp(epochs=30, optimizer={"name": "sgd", "lr": 1e-6},
                      early_stopping={"metric": "val/accuracy", "patience": 2})
    path = hookforge_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    straight = hookforge_cli("train", "-c", path, "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    env = {**killer_env, "HOOKFORGE_TEST_KILL": "artifact:SIGKILL"}
    killed = hookforge_cli("train", "-c", path, "--run-dir", "killed", env=env)
    assert killed.returncode == -9, killed.stderr
    resumed = hookforge_cli("train", "--resume", "killed", env=env)
    assert resumed.returncode == 0, resumed.stderr
    info = RunRecord.open(hookforge_tmp / "killed").info()
    assert info["fit"]["epochs"] == RunRecord.open(hookforge_tmp / "straight").info()["fit"]["epochs"]
    assert info["stop_reason"] == "early_stopping"
    assert _metrics(hookforge_tmp / "killed") == _metrics(hookforge_tmp / "straight")


def test_config_errors_found_before_the_run_directory_is_made(iris_mlp, hookforge_cli, hookforge_tmp):
    path = hookforge_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(iris_mlp(epochs=1)))
    cases = [(["loop.device=cuda"], "CUDA is not available"),
             (["model.hidden=[0]"], "model.hidden.0"),
             (["run.seed=99999999999"], "run.seed")]
    for overrides, message in cases:
        result = hookforge_cli("train", "-c", path, "--run-dir", "never", *overrides)
        assert result.returncode == 2 and message in result.stderr, (overrides, result.stderr)
        assert not (hookforge_tmp / "never").exists(), overrides
    typo = hookforge_cli("train", "-c", path, "loop.monitor=val/acuracy")
    assert typo.returncode == 2
    assert "loop.monitor 'val/acuracy' is not logged (did you mean 'val/accuracy'?)" in typo.stderr


def test_regression_on_diabetes(tiny_config):
    result = hookforge.train(tiny_config(
        data={"name": "sklearn", "dataset": "diabetes"},
        model={"name": "mlp", "hidden": [32], "dropout": 0.0},
        loop={"name": "supervised", "epochs": 40, "batch_size": 32, "device": "cpu",
              "optimizer": {"lr": 0.003, "weight_decay": 0.01}}))
    # As good as a linear model fit on the same split (diabetes is nearly linear).
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True)
    split = json.loads((result.run_dir / "splits.json").read_text())["indices"]
    linear = LinearRegression().fit(X[split["train"]], y[split["train"]])
    baseline = linear.score(X[split["test"]], y[split["test"]])
    assert result.evaluation["test"]["r2"] > baseline - 0.1
    # Evaluating val then test in one process must not mix the splits up (a cache bug once did).
    fresh = hookforge.Run.open(result.run_dir).evaluate(["test", "val"])
    assert fresh["test"]["mse"] == pytest.approx(result.evaluation["test"]["mse"], rel=1e-6)
    assert fresh["val"]["mse"] == pytest.approx(result.evaluation["val"]["mse"], rel=1e-6)


def test_arrays_formats_train_and_predict(tiny_config, hookforge_tmp, hookforge_cli):
    import h5py
    import numpy as np
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    np.savez(hookforge_tmp / "wine.npz", X=X, y=y)
    with h5py.File(hookforge_tmp / "wine.h5", "w") as handle:
        handle["features"], handle["labels"] = X, y
    np.savetxt(hookforge_tmp / "wine.csv", np.column_stack([X, y]), delimiter=",",
               header=",".join([f"f{i}" for i in range(13)] + ["label"]), comments="")
    loop = {"name": "supervised", "epochs": 15, "batch_size": 16, "device": "cpu"}
    accuracies = []
    for data in ({"name": "arrays", "path": "wine.npz"},
                 {"name": "arrays", "path": "wine.h5", "x_key": "features", "y_key": "labels"},
                 {"name": "arrays", "path": "wine.csv"}):
        result = hookforge.train(tiny_config(data=data, model={"name": "mlp"}, loop=loop))
        accuracies.append(result.evaluation["test"]["accuracy"])
    assert min(accuracies) > 0.85 and len(set(accuracies)) == 1  # same data, same split, same run
    np.savez(hookforge_tmp / "inputs.npz", X=X[:5])
    predicted = hookforge_cli("predict", result.run_dir, "inputs.npz", "-o", "preds.csv")
    assert predicted.returncode == 0, predicted.stderr
    np.savez(hookforge_tmp / "narrow.npz", X=X[:5, :4])
    narrow = hookforge_cli("predict", result.run_dir, "narrow.npz", "-o", "x.csv")
    assert narrow.returncode == 2 and "trained on [13]" in narrow.stderr


def test_arrays_bad_input(tiny_config, hookforge_tmp):
    import numpy as np

    np.savez(hookforge_tmp / "short.npz", X=np.ones((10, 3)), y=np.arange(9) % 2)
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[5, 1] = np.nan
    np.savez(hookforge_tmp / "nan.npz", X=X, y=np.arange(40) % 2)
    np.savez(hookforge_tmp / "keys.npz", inputs=np.ones((10, 3)), y=np.arange(10) % 2)
    model = {"name": "mlp"}
    loop = {"name": "supervised", "epochs": 1, "batch_size": 4, "device": "cpu"}
    cases = [({"path": "missing.npz"}, "data file not found"),
             ({"path": "short.npz"}, "'X' has 10 rows but 'y' has 9"),
             ({"path": "nan.npz"}, "NaN or infinite value in row 5"),
             ({"path": "keys.npz"}, "no array named 'X'")]
    for data, message in cases:
        with pytest.raises(DataError, match=message):
            hookforge.train(tiny_config(data={"name": "arrays", **data}, model=model, loop=loop))
    dropped = hookforge.train(tiny_config(data={"name": "arrays", "path": "nan.npz", "on_nan": "drop"},
                                          model=model, loop=loop))
    assert sum(json.loads((dropped.run_dir / "splits.json").read_text())["sizes"].values()) == 39


def test_bad_input_through_the_cli(iris_mlp, hookforge_cli, hookforge_tmp):
    path = hookforge_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(iris_mlp(epochs=1)))
    cases = [
        (["loop.batch_size=5000"], "loop.batch_size 5000 is larger than the training split"),
        (["model.num_classes=2"], "labels out of range for the model: the data has 3 classes"),
        (["loop.device=tpu"], "invalid value for 'loop.device'"),
        (["loop.early_stopping.metric=val/acc"], "loop.early_stopping.metric 'val/acc' is not logged"),
        (["loop.optimizer.lr=1e30", "loop.optimizer.name=sgd", "loop.optimizer.momentum=0.99",
          "model.standardize=false", "loop.epochs=5"], "the training loss became"),
    ]
    for overrides, message in cases:
        result = hookforge_cli("train", "-c", path, *overrides)
        assert result.returncode == 2, (overrides, result.stderr)
        assert message in result.stderr, (overrides, result.stderr)
        assert "Traceback" not in result.stderr


def test_checkpoints_from_another_model_or_corrupt_are_refused(iris_mlp, hookforge_cli):
    result = hookforge.train(iris_mlp(epochs=1))
    other = hookforge_cli("evaluate", result.run_dir, "model.hidden=[16]")
    assert other.returncode == 2
    assert "does not fit this model: parameter 'net.0.weight' has shape" in other.stderr
    weights = result.run_dir / "checkpoints" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    corrupt = hookforge_cli("evaluate", result.run_dir)
    assert corrupt.returncode == 2 and "corrupt" in corrupt.stderr
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        from hookforge_torch.checkpoint import load_weights
        from hookforge_torch.nets import MLPNet

        load_weights(MLPNet(4, [32], 3, "relu", 0.0), weights.parent)


def test_keep_last_n_periodic_checkpoints(iris_mlp):
    result = hookforge.train(iris_mlp(checkpoint_every_n_steps=2, keep_last_n=2))
    names = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert names == ["best", "last", "step-26", "step-28"]
