"""The run record: layout, run.json, events, metrics, atomic files, failures and resume."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import IRIS_CSV, QUICKSTART

import hookforge
from hookforge.errors import CheckpointError, DataError, UsageError
from hookforge.record import RunRecord


def test_record_files_follow_the_umask(quickstart, hookforge_tmp):
    """Atomic writes must not leave 0600 files or 0700 checkpoint folders (tempfile's modes): a
    teammate, a tracking server or a serving container reads the record as another user."""
    import os
    import stat

    previous = os.umask(0o022)
    try:
        run_dir = hookforge.train(quickstart).run_dir
    finally:
        os.umask(previous)
    modes = {str(path.relative_to(run_dir)): stat.S_IMODE(path.stat().st_mode)
             for path in [run_dir, *run_dir.rglob("*")]}
    assert "checkpoints/best" in modes and "config.yaml" in modes and "figures" in modes
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o755 if (run_dir / name).is_dir() else 0o644)}
    assert not wrong, wrong


def test_python_api_train_writes_the_whole_record(quickstart, hookforge_tmp):
    result = hookforge.train(quickstart, ["run.name=api"])
    run_dir = result.run_dir
    assert result.status == "finished"
    assert run_dir.parent == hookforge_tmp / "outputs" / "runs"
    assert run_dir.name.endswith("_api")
    for name in ("config.yaml", "run.json", "events.jsonl", "metrics.csv", "evaluation.json",
                 "dataset.json", "splits.json", "checkpoints/best/checkpoint.json",
                 "figures/confusion_matrix_test.png"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["start_time"] and info["end_time"]
    for package in ("hookforge", "hookforge-example", "numpy", "scikit-learn", "python"):
        assert package in info["versions"], package
    assert info["components"] == {"data": "csv", "model": "centroid", "loop": "simple",
                                  "trackers": ["local"], "evaluators": ["classification"]}
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "run_end"
    assert events.index("epoch_end") < events.index("checkpoint") < events.index("evaluation")
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "epoch", "split", "name", "value"]
    assert {r["split"] for r in rows} == {"val", "test"}
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["test"]["n_samples"] == 23  # 15% of 150, stratified
    assert result.metric("test/accuracy") == evaluation["test"]["accuracy"]
    assert not list(run_dir.rglob("*.tmp")) and not list(run_dir.rglob(".tmp-*"))


def test_trackers_get_the_checkpoint_before_the_metric_figures_are_drawn(quickstart):
    """So that a tracker's worker uploads the model while the training thread draws."""
    seen: list[tuple[str, str, set[str]]] = []

    class Artifacts:
        @hookforge.hookimpl
        def hookforge_before_fit(self, run, model, dataset):
            for step in (1, 2, 3):  # a curve: drawn as figures/metric_loss.png at the end
                run.log_metrics({"loss": 1.0 / step}, step=step, split="train")

        @hookforge.hookimpl
        def hookforge_log_artifact(self, run, path, kind):
            seen.append((kind, path.name, {p.name for p in run.figures_dir.glob("metric_*.png")}))

    result = hookforge.train(quickstart, plugins=[Artifacts()])
    kinds = [kind for kind, _, _ in seen]
    assert kinds[:3] == ["config", "evaluation", "checkpoint"] and set(kinds[3:]) == {"figure"}
    assert all(not drawn for kind, _, drawn in seen if kind != "figure")
    figures = {path.name for path in (result.run_dir / "figures").glob("*.png")}
    assert any(name.startswith("metric_") for name in figures)
    assert {name for kind, name, _ in seen if kind == "figure"} == figures


def test_same_seed_same_split_and_metrics(quickstart):
    a = hookforge.train(quickstart)
    b = hookforge.train(quickstart)
    assert json.loads((a.run_dir / "splits.json").read_text())["indices"] == \
        json.loads((b.run_dir / "splits.json").read_text())["indices"]
    assert a.evaluation == b.evaluation
    c = hookforge.train(quickstart, ["run.seed=1"])
    assert json.loads((c.run_dir / "splits.json").read_text())["indices"] != \
        json.loads((a.run_dir / "splits.json").read_text())["indices"]


def test_stratified_split_sizes(tiny_config):
    result = hookforge.train(tiny_config(model={"name": "centroid"},
                                         data={"split": {"val": 0.2, "test": 0.2}}))
    splits = json.loads((result.run_dir / "splits.json").read_text())
    assert splits["sizes"] == {"train": 90, "val": 30, "test": 30}
    indices = splits["indices"]
    assert not set(indices["train"]) & set(indices["test"])
    assert sorted(indices["train"] + indices["val"] + indices["test"]) == list(range(150))


def test_search_trials_prepare_the_data_once_each_trial_splits_its_own(tiny_config, hookforge_tmp,
                                                                       monkeypatch):
    from hookforge.builtins.data import tabular

    prepared = []
    prepare = tabular.TabularSource._prepare
    monkeypatch.setattr(tabular.TabularSource, "_prepare",
                        lambda self, run: prepared.append(run.name) or prepare(self, run))
    data = hookforge_tmp / "iris.csv"
    data.write_text(IRIS_CSV.read_text())
    config = tiny_config(model={"name": "centroid"},
                         data={"name": "csv", "path": str(data), "target": "species"})

    def trial(number: int, val: float) -> dict:
        result = hookforge.train(config, [f"data.split.val={val}", f"run.name=t{number}"],
                                 parent={"study": "s", "trial": number})
        assert result.status == "finished"
        return json.loads((result.run_dir / "splits.json").read_text())["sizes"]

    assert trial(0, 0.2)["val"] == 30 and trial(1, 0.4)["val"] == 60  # the split is per trial
    assert prepared == ["t0"]
    with data.open("a") as handle:  # the file changed: read and checked again
        handle.write(IRIS_CSV.read_text().splitlines()[1] + "\n")
    assert sum(trial(2, 0.2).values()) == 151 and prepared == ["t0", "t2"]
    hookforge.train(config)  # a run outside a search keeps nothing
    assert prepared == ["t0", "t2", "test"]


@pytest.mark.parametrize("dataset, task", [("breast_cancer", "classification"),
                                           ("wine", "classification"), ("digits", "classification"),
                                           ("iris", "classification"), ("diabetes", "regression")])
def test_sklearn_datasets(dataset, task, hookforge_tmp):
    run = hookforge.Run.from_config({"run": {"output_dir": "out"},
                                     "data": {"name": "sklearn", "dataset": dataset},
                                     "model": "centroid"})
    run._open()
    data = run.load_data()
    assert data.task == task
    assert set(data.splits) == {"train", "val", "test"}


def test_regression_evaluator_through_a_registered_model(hookforge_register, tiny_config):
    from hookforge import ComponentConfig, Model
    from hookforge.types import Predictions

    class MeanRegressor(Model):
        class Config(ComponentConfig):
            pass

        def fit(self, run, dataset):
            self.mean = float(dataset.split("train").y.mean())

        def predict(self, inputs):
            import numpy as np

            return Predictions(np.full(len(inputs), self.mean), task="regression")

        def save(self, directory):
            (directory / "mean.json").write_text(json.dumps(self.mean))

        def load(self, directory, info):
            self.mean = json.loads((directory / "mean.json").read_text())

    hookforge_register("model", "mean", MeanRegressor)
    result = hookforge.train(tiny_config(data={"name": "sklearn", "dataset": "diabetes"},
                                         model={"name": "mean"}))
    test = result.evaluation["test"]
    assert set(test) >= {"mse", "rmse", "mae", "r2"}
    assert test["r2"] < 0.05  # predicting the mean explains nothing
    assert test["rmse"] == pytest.approx(test["mse"] ** 0.5)


def test_data_errors_mark_the_run_failed(hookforge_cli, hookforge_tmp):
    (hookforge_tmp / "empty.csv").write_text("a,b,target\n")
    (hookforge_tmp / "strings.csv").write_text("a,b,target\n1,x,0\n2,y,1\n3,z,0\n4,w,1\n")
    (hookforge_tmp / "nan.csv").write_text("a,b,target\n1,,0\n2,3,1\n3,4,0\n4,5,1\n")
    (hookforge_tmp / "one.csv").write_text("a,b,target\n1,2,0\n2,3,0\n3,4,0\n4,5,0\n")
    cases = {
        "missing": (["data.path=missing.csv"], "data file not found: missing.csv"),
        "target": ([f"data.path={IRIS_CSV}", "data.target=spcies"],
                   "target column 'spcies' not found (did you mean 'species'?)"),
        "empty": (["data.path=empty.csv", "data.target=target"], "has no rows"),
        "strings": (["data.path=strings.csv", "data.target=target"], "column 'b' is not numeric"),
        "nan": (["data.path=nan.csv", "data.target=target"], "missing or infinite value in column 'b'"),
        "single": (["data.path=one.csv", "data.target=target"], "has a single class"),
    }
    for name, (overrides, message) in cases.items():
        result = hookforge_cli("train", "-c", QUICKSTART, *overrides, "--run-dir", name)
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr
        info = json.loads((hookforge_tmp / name / "run.json").read_text())
        assert info["status"] == "failed" and info["error"]["type"] == "DataError"
        assert (hookforge_tmp / name / "config.yaml").exists()  # what was recorded stays


def test_on_nan_drop(tiny_config, hookforge_tmp):
    rows = ["a,b,target"] + [f"{i},{'' if i == 3 else i * 2},{i % 2}" for i in range(40)]
    (hookforge_tmp / "nan.csv").write_text("\n".join(rows) + "\n")
    result = hookforge.train(tiny_config(data={"name": "csv", "path": "nan.csv", "on_nan": "drop"},
                                         model={"name": "centroid"}))
    splits = json.loads((result.run_dir / "splits.json").read_text())
    assert sum(splits["sizes"].values()) == 39


def test_unexpected_error_is_exit_1_with_traceback(hookforge_cli, hookforge_tmp, test_plugins_env):
    result = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--model",
                           "crashing", "--run-dir", "r", env=test_plugins_env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "kaboom inside the model" in result.stderr
    record = RunRecord.open(hookforge_tmp / "r")
    assert record.status == "failed"
    assert record.info()["error"]["message"] == "kaboom inside the model"
    events = [e["event"] for e in record.read_events()]
    assert events[-2:] == ["exception", "run_end"]
    assert record.read_metrics()[0]["name"] == "loss"  # logged before the crash, kept
    predict = hookforge_cli("predict", "r", IRIS_CSV, "-o", "p.csv", env=test_plugins_env)
    assert predict.returncode == 2 and "Traceback" not in predict.stderr
    assert "has no 'last' checkpoint (the run failed before saving one)" in predict.stderr


def test_interrupt_exits_130_and_resume_finishes(hookforge_cli, hookforge_tmp, test_plugins_env):
    first = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--model",
                          "interrupting", "--run-dir", "r", env=test_plugins_env)
    assert first.returncode == 130, first.stderr
    assert "--resume" in first.stderr
    record = RunRecord.open(hookforge_tmp / "r")
    assert record.status == "interrupted"
    evaluate = hookforge_cli("evaluate", "r", env=test_plugins_env)
    assert evaluate.returncode == 2 and "before saving one); `hookforge train --resume`" in evaluate.stderr
    second = hookforge_cli("train", "--resume", "r", env=test_plugins_env)
    assert second.returncode == 0, second.stderr
    info = record.info()
    assert info["status"] == "finished" and len(info["resumes"]) == 1
    events = [e["event"] for e in record.read_events()]
    assert events.count("run_start") == 2 and "resume" in events
    assert not [r for r in record.read_metrics() if r["name"] == "loss"]  # redone work dropped
    again = hookforge_cli("train", "--resume", "r", env=test_plugins_env)
    assert again.returncode == 2 and "already finished" in again.stderr


def test_resume_of_something_that_is_not_a_run(hookforge_cli, hookforge_tmp):
    (hookforge_tmp / "plain").mkdir()
    for target, message in (("nowhere", "does not exist"), ("plain", "has no run.json")):
        result = hookforge_cli("train", "--resume", target)
        assert result.returncode == 2 and message in result.stderr
    (hookforge_tmp / "plain" / "run.json").write_text("{not json")
    (hookforge_tmp / "plain" / "config.yaml").write_text("run: {}\n")
    result = hookforge_cli("train", "--resume", "plain")
    assert result.returncode == 2 and "unreadable" in result.stderr


def test_corrupt_checkpoint_is_detected(quickstart):
    result = hookforge.train(quickstart)
    weights = result.run_dir / "checkpoints" / "best" / "centroid.json"
    weights.write_text(weights.read_text().replace("1", "2", 1))
    with pytest.raises(CheckpointError, match="corrupt or was modified"):
        hookforge.Run.open(result.run_dir).evaluate(["test"])
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"centroid\.json is missing"):
        hookforge.Run.open(result.run_dir).evaluate(["test"])


def test_checkpoint_swap_survives_a_crash_between_renames(tmp_path):
    record = RunRecord(tmp_path)
    record.save_checkpoint("last", lambda d: (d / "w.txt").write_text("1"), epoch=0, step=1)
    # A crash after the old copy was moved aside but before the new one took its place:
    (tmp_path / "checkpoints" / "last").rename(tmp_path / "checkpoints" / ".old-last")
    found = record.checkpoint_dir("last")
    assert found is not None and (found / "w.txt").read_text() == "1"
    record.save_checkpoint("last", lambda d: (d / "w.txt").write_text("2"), epoch=1, step=2)
    assert (record.verified_checkpoint("last") / "w.txt").read_text() == "2"
    assert not (tmp_path / "checkpoints" / ".old-last").exists()


def test_torn_metric_lines_are_dropped(tmp_path):
    record = RunRecord(tmp_path)
    record.metrics_file.write_text("step,epoch,split,name,value\n1,0,train,loss,0.5\n2,0,tra")
    assert record.read_metrics() == [{"step": 1, "epoch": 0, "split": "train", "name": "loss",
                                      "value": 0.5}]
    record.truncate_logs(after_step=10)
    assert record.metrics_file.read_text().endswith("1,0,train,loss,0.5\n")


def test_nan_metrics_are_recorded_as_nan(quickstart):
    run = hookforge.Run.from_config(quickstart)
    run._open()
    run.hook.hookforge_run_start(run=run)
    run.log_metrics({"loss": float("nan")}, step=3, epoch=0)
    run.hook.hookforge_run_end(run=run, status="finished")
    rows = run.record.read_metrics()
    assert rows[0]["name"] == "loss" and rows[0]["value"] != rows[0]["value"]


def test_open_rejects_fit_twice(quickstart):
    result = hookforge.train(quickstart)
    with pytest.raises(UsageError, match="already holds a run"):
        hookforge.Run.open(result.run_dir).fit()


def test_config_yaml_round_trips(quickstart):
    result = hookforge.train(quickstart)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    again = hookforge.train(saved, [f"run.output_dir={result.run_dir.parent.parent}"])
    assert again.evaluation == result.evaluation


def test_data_error_types():
    assert issubclass(DataError, UsageError)


def test_system_metrics_are_sampled_off_the_training_thread(quickstart):
    import time

    from hookforge import hookimpl

    class Slow:  # keeps the run open long enough for several samples
        @hookimpl
        def hookforge_after_fit(self, run, model, result):
            time.sleep(0.3)

    result = hookforge.train(quickstart, ["run.system_metrics_interval_s=0.05"], plugins=[Slow()])
    rows = [r for r in RunRecord.open(result.run_dir).read_metrics() if r["split"] == "system"]
    names = {r["name"] for r in rows}
    assert {"cpu_percent", "process_memory_mb", "memory_used_percent"} <= names
    assert len([r for r in rows if r["name"] == "process_memory_mb"]) >= 3
    assert all(r["value"] > 0 for r in rows if r["name"] == "process_memory_mb")
    off = hookforge.train(quickstart, ["run.system_metrics=false", "run.system_metrics_interval_s=0.05"],
                          plugins=[Slow()])
    assert not [r for r in RunRecord.open(off.run_dir).read_metrics() if r["split"] == "system"]
