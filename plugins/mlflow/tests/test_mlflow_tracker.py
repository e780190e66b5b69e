"""The mlflow tracker against the SQLite store and a real `mlflow server` on loopback."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hookforge_mlflow.tracker import mlflow_key

import hookforge
from hookforge.record import RunRecord

ROOT = Path(__file__).resolve().parents[3]


def client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def local_counts(run_dir: Path) -> Counter:
    return Counter(f"{r['split']}/{r['name']}" for r in RunRecord.open(run_dir).read_metrics())


def mlflow_counts(uri: str, run_dir: Path) -> Counter:
    run_id = json.loads((run_dir / "trackers" / "mlflow.json").read_text())["run_id"]
    c = client(uri)
    return Counter({key: len(c.get_metric_history(run_id, key))
                    for key in c.get_run(run_id).data.metrics})


def mlp_config(tmp: Path, uri: str, epochs: int = 3, **run) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "mlp_quickstart.yaml").read_text())
    config["run"].update({"output_dir": str(tmp / "outputs"), "log_every_n_steps": 2, **run})
    config["loop"].update({"epochs": epochs, "device": "cpu"})
    config["loop"].pop("early_stopping", None)
    config["trackers"] = ["local", {"name": "mlflow", "tracking_uri": uri, "flush_timeout_s": 20}]
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sqlite_store_holds_params_metrics_tags_artifacts(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("train", "-c", ROOT / "configs" / "quickstart.yaml",
                           f"data.path={ROOT / 'examples' / 'data' / 'iris.csv'}",
                           "--tracker", "mlflow", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    uri = "sqlite:///mlruns.db"  # the default, in the working directory
    assert (hookforge_tmp / "mlruns.db").exists()
    state = json.loads((hookforge_tmp / "r" / "trackers" / "mlflow.json").read_text())
    run = client(uri).get_run(state["run_id"])
    assert run.info.status == "FINISHED"
    assert client(uri).get_experiment(run.info.experiment_id).name == "quickstart-train"
    assert run.data.params["model.name"] == "centroid"
    assert run.data.tags["hookforge.model"] == "centroid"
    assert run.data.tags["hookforge.version"] == hookforge.__version__
    assert mlflow_counts(uri, hookforge_tmp / "r") == local_counts(hookforge_tmp / "r")
    artifacts = {a.path for a in client(uri).list_artifacts(state["run_id"])}
    assert {"config.yaml", "evaluation.json", "figures"} <= artifacts


def test_killed_server_then_sync_restores_every_point(mlflow_server, hookforge_tmp):
    import subprocess
    import sys

    server = mlflow_server().start()
    config = mlp_config(hookforge_tmp, server.uri, epochs=24, log_every_n_steps=1)
    process = subprocess.Popen([sys.executable, "-m", "hookforge", "train", "-c", str(config),
                                "--run-dir", "r"], cwd=hookforge_tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HOOKFORGE_PROGRESS": "0"})
    events = hookforge_tmp / "r" / "events.jsonl"
    state_file = hookforge_tmp / "r" / "trackers" / "mlflow.json"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill the server once training and the MLflow run are under way
        if state_file.exists() and events.exists() and events.read_text().count('"epoch_end"') >= 2:
            break
        time.sleep(0.05)
    server.stop()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    record = RunRecord.open(hookforge_tmp / "r")
    assert record.status == "finished"
    assert err.count("tracker 'mlflow' failed") == 1  # logged once, not per step
    local = local_counts(hookforge_tmp / "r")
    assert sum(local.values()) > 1500

    server.start()  # back, with the same store
    before = mlflow_counts(server.uri, hookforge_tmp / "r")
    assert before != local  # the outage lost points
    from hookforge.sync import sync_run

    synced = sync_run(hookforge_tmp / "r", "mlflow")
    added = int(re.search(r"(\d+) metric points added", synced).group(1))
    assert added > 1000  # more than one log_batch request may carry (1000 metrics)
    assert mlflow_counts(server.uri, hookforge_tmp / "r") == local
    again = sync_run(hookforge_tmp / "r", "mlflow")
    assert again.startswith(f"synced {hookforge_tmp / 'r'} to 'mlflow': 0 metric points added")
    assert mlflow_counts(server.uri, hookforge_tmp / "r") == local
    state = json.loads((hookforge_tmp / "r" / "trackers" / "mlflow.json").read_text())
    synced_run = client(server.uri).get_run(state["run_id"])
    assert synced_run.info.status == "FINISHED"
    assert synced_run.data.tags["hookforge.model_flavor"] == "hookforge"  # the model came too
    assert [a.path for a in client(server.uri).list_artifacts(state["run_id"], "model")
            if a.path == "model/MLmodel"]


def test_unreachable_server_at_start_then_sync_later(mlflow_server, hookforge_tmp, hookforge_cli):
    server = mlflow_server()  # a free port, nothing listening yet
    config = mlp_config(hookforge_tmp, server.uri, epochs=1)
    result = hookforge_cli("train", "-c", config, "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("tracker 'mlflow' failed") == 1
    assert RunRecord.open(hookforge_tmp / "r").status == "finished"
    server.start()
    synced = hookforge_cli("sync", "r", "--tracker", "mlflow")
    assert synced.returncode == 0, synced.stderr
    assert mlflow_counts(server.uri, hookforge_tmp / "r") == local_counts(hookforge_tmp / "r")


def test_nan_metric_is_kept_locally_and_in_mlflow(tiny_config):
    class NanLogger:
        @hookforge.hookimpl
        def hookforge_after_epoch(self, run, result):
            run.log_metrics({"odd": float("nan")}, step=result.step, split="val")

    config = tiny_config(model={"name": "centroid"},
                         trackers=["local", {"name": "mlflow", "tracking_uri": "sqlite:///nan.db"}])
    result = hookforge.Run.from_config(config, plugins=[NanLogger()]).fit()
    rows = [r for r in RunRecord.open(result.run_dir).read_metrics() if r["name"] == "odd"]
    assert rows and rows[0]["value"] != rows[0]["value"]
    history = mlflow_counts("sqlite:///nan.db", result.run_dir)
    assert history["val/odd"] == 1


def test_two_trackers_see_the_same_points(tiny_config):
    config = tiny_config(model={"name": "centroid"},
                         trackers=["local", "jsonl", {"name": "mlflow", "tracking_uri": "sqlite:///t.db"}])
    result = hookforge.train(config)
    lines = [json.loads(x) for x in (result.run_dir / "tracker.jsonl").read_text().splitlines()]
    jsonl = Counter(line["key"] for line in lines if line["type"] == "metric")
    assert jsonl == mlflow_counts("sqlite:///t.db", result.run_dir) == local_counts(result.run_dir)


def test_invalid_experiment_name_is_a_config_error(hookforge_cli):
    result = hookforge_cli("train", "-c", ROOT / "configs" / "quickstart.yaml",
                           "trackers=[local,{name: mlflow, experiment: ' '}]")
    assert result.returncode == 2
    assert "invalid value for 'trackers.1.experiment'" in result.stderr


def test_grid_trials_are_nested_under_a_study_run(tiny_config):
    from hookforge.config import load_config
    from hookforge.search import SearchSession

    config = load_config(tiny_config(
        model={"name": "centroid"},
        trackers=["local", {"name": "mlflow", "tracking_uri": "sqlite:///hpo.db"}],
        searcher={"name": "grid", "metric": "val/accuracy",
                  "params": {"model.metric": ["euclidean", "manhattan"]}}))
    SearchSession(config, study="nested").search()
    c = client("sqlite:///hpo.db")
    experiment = c.get_experiment_by_name("nested-hpo")  # a search's own experiment
    runs = c.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("hookforge.role") == "study"]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(trials) == 2
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED"  # the study's parent run is closed at its end
    assert len({t.info.run_name for t in trials}) == 2


def test_search_tracker_option_nests_each_trial(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", ROOT / "configs" / "quickstart.yaml", "--tracker", "mlflow",
                           "model.metric=euclidean,manhattan", "run.name=cli-sweep",
                           f"data.path={ROOT / 'examples' / 'data' / 'iris.csv'}",
                           f"run.output_dir={hookforge_tmp / 'outputs'}")
    assert result.returncode == 0, result.stderr
    c = client(f"sqlite:///{hookforge_tmp / 'mlruns.db'}")  # the default URI, in the working dir
    runs = c.search_runs([c.get_experiment_by_name("cli-sweep-hpo").experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(trials) == 2
    assert {t.data.params["model.metric"] for t in trials} == {"euclidean", "manhattan"}


def test_champion_is_registered_only_above_the_threshold(tiny_config, hookforge_cli):
    uri = "sqlite:///champ.db"
    for temperature in (0.5, 2.0):
        hookforge.train(tiny_config(model={"name": "centroid", "temperature": temperature},
                                    run={"name": "champ"},
                                    trackers=["local", {"name": "mlflow", "tracking_uri": uri}]))
    env = {"MLFLOW_TRACKING_URI": uri}
    refused = hookforge_cli("compare", "--tracker", "mlflow", "--experiment", "champ-train",
                            "--register-as", "champ", "--metric", "val/accuracy", "--threshold", "1.01",
                            env=env)
    assert refused.returncode == 0, refused.stderr
    assert "no champion" in refused.stdout
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        client(uri).get_registered_model("champ")
    promoted = hookforge_cli("compare", "--tracker", "mlflow", "--experiment", "champ-train",
                             "--register-as", "champ", "--metric", "val/accuracy", "--threshold", "0.5",
                             "--json", env=env)
    assert promoted.returncode == 0, promoted.stderr
    data = json.loads(promoted.stdout)
    assert "registered as version 1 of model 'champ' (alias champion)" in data["message"]
    version = client(uri).get_model_version_by_alias("champ", "champion")
    champion_dir = Path(data["champion"])
    state = json.loads((champion_dir / "trackers" / "mlflow.json").read_text())
    assert str(version.version) == "1" and version.run_id == state["run_id"]
    # a model without an MLflow flavor of its own is served from code: the registry loads it
    import mlflow
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).frame.drop(columns="target").iloc[::15]
    mlflow.set_tracking_uri(uri)
    try:
        served = mlflow.pyfunc.load_model("models:/champ@champion").predict(rows)
    finally:
        mlflow.set_tracking_uri(None)  # set_tracking_uri exports it to later subprocesses
    expected = hookforge.Run.open(champion_dir).predict_frame(rows)
    assert served.equals(expected) and served.columns[0] == "prediction"
    missing = hookforge_cli("compare", "--tracker", "mlflow", "--experiment", "nope",
                            "--metric", "val/accuracy", env=env)
    assert missing.returncode == 2 and "experiment 'nope' not found" in missing.stderr


def test_metric_keys_are_made_mlflow_safe():
    assert mlflow_key("val/f1_class_a:b") == "val/f1_class_a_b"


def test_torch_model_is_logged_as_a_model_mlflow_loads(hookforge_tmp):
    """The MLP has no pickle-free MLflow flavor: it is logged as a hookforge model served from
    code (safetensors checkpoint, config without trackers), which mlflow.pyfunc loads and which
    predicts what `hookforge predict` does."""
    import mlflow
    import numpy as np
    from sklearn.datasets import load_digits

    uri = f"sqlite:///{hookforge_tmp / 'served.db'}"
    config = yaml.safe_load(mlp_config(hookforge_tmp, uri, epochs=1).read_text())
    result = hookforge.train(config)
    run_id = json.loads((result.run_dir / "trackers" / "mlflow.json").read_text())["run_id"]
    run = client(uri).get_run(run_id)
    assert run.data.tags["hookforge.model_flavor"] == "hookforge"
    model_files = {a.path for a in client(uri).list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/artifacts"} <= model_files
    # the serving environment: hookforge and the run's own plugins, not every one installed
    requirements = Path(mlflow.artifacts.download_artifacts(
        f"{run.info.artifact_uri}/model/requirements.txt")).read_text().split()
    versions = json.loads((result.run_dir / "run.json").read_text())["versions"]
    assert [r for r in requirements if r.startswith("hookforge")] == [
        f"hookforge=={versions['hookforge']}", f"hookforge-torch=={versions['hookforge-torch']}"]
    rows = load_digits(as_frame=True).frame.drop(columns="target").iloc[:20]
    rows.columns = [str(c) for c in rows.columns]
    served = mlflow.pyfunc.load_model(f"{run.info.artifact_uri}/model").predict(rows)
    expected = hookforge.Run.open(result.run_dir).predict_frame(rows)
    assert list(served["prediction"]) == list(expected["prediction"])
    assert np.allclose(served.filter(like="prob_").to_numpy(), expected.filter(like="prob_").to_numpy())


def test_served_requirements_are_the_run_plugins_and_an_ensemble_members():
    pytest.importorskip("hookforge_gbm")
    pytest.importorskip("hookforge_torch")
    from hookforge_mlflow.tracker import serving_requirements

    info = {"components": {"data": "sklearn", "model": "voting", "loop": "tabular",
                           "trackers": ["local", "mlflow", "comet"], "evaluators": ["classification"]},
            "ensemble": {"members": [{"model": "lightgbm"}, {"model": "mlp"},
                                     {"model": "made_up_in_a_notebook"}]},
            "versions": {"hookforge": "1.0", "hookforge-gbm": "1.1", "hookforge-torch": "1.2",
                         "hookforge-comet": "1.3", "hookforge-bert": "1.4"}}
    assert serving_requirements(info) == ["hookforge==1.0", "hookforge-gbm==1.1",
                                          "hookforge-torch==1.2"]


def test_bulk_metric_writes_leave_the_store_as_log_batch_does(hookforge_tmp):
    """The SQLite fast path (bulk_metrics.py) against MLflow's own log_batch: same histories,
    same latest values, NaN and infinities stored alike, a point sent twice stored once."""
    from hookforge_mlflow.bulk_metrics import ROWS_PER_STATEMENT, bulk_writer
    from mlflow.entities import Metric

    c = client(f"sqlite:///{hookforge_tmp / 'bulk.db'}")
    experiment = c.create_experiment("bulk")
    by_mlflow, by_bulk = (c.create_run(experiment).info.run_id for _ in range(2))
    rows = [("loss", 0.5, 1000, 0), ("loss", 0.25, 1001, 1), ("loss", 0.75, 999, 1),
            ("acc", float("nan"), 1000, 0), ("acc", float("inf"), 1002, 2), ("acc", 0.5, 1001, 1),
            ("lr", 1e-3, 1000, 5), ("lr", 2e-3, 1000, 5)]
    rows += [("many", i / 7, 2000 + i, i) for i in range(2 * ROWS_PER_STATEMENT + 7)]  # 3 statements
    write = bulk_writer(c)
    assert write is not None
    write(by_bulk, rows[:5])
    write(by_bulk, rows[3:8])  # overlapping: the repeated points are skipped
    write(by_bulk, rows[6:])  # all finite (the fast path), again overlapping
    c.log_batch(by_mlflow, metrics=[Metric(*row) for row in rows])

    def state(run_id):
        histories = {key: sorted((m.step, m.timestamp, str(m.value))
                                 for m in c.get_metric_history(run_id, key))
                     for key in ("loss", "acc", "lr", "many")}
        return histories, {k: str(v) for k, v in c.get_run(run_id).data.metrics.items()}

    assert state(by_bulk) == state(by_mlflow)
    assert len(state(by_bulk)[0]["acc"]) == 3
    assert len(state(by_bulk)[0]["many"]) == 2 * ROWS_PER_STATEMENT + 7


def test_bulk_metric_writes_are_only_for_sqlite_stores():
    from hookforge_mlflow.bulk_metrics import bulk_writer

    assert bulk_writer(client("http://127.0.0.1:9")) is None  # a REST store: log_batch


def test_a_plain_path_is_an_mlflow_file_store(tiny_config, hookforge_tmp):
    store = hookforge_tmp / "mlruns"
    result = hookforge.train(tiny_config(model={"name": "centroid"}, run={"name": "filestore"},
                                         trackers=["local", {"name": "mlflow", "tracking_uri": str(store),
                                                             "log_model": False}]))
    run_id = json.loads((result.run_dir / "trackers" / "mlflow.json").read_text())["run_id"]
    run = client(str(store)).get_run(run_id)
    assert run.info.status == "FINISHED" and "val/accuracy" in run.data.metrics
    assert store.is_dir()


def test_a_refused_connection_fails_at_once(tiny_config, caplog):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    with caplog.at_level("WARNING", logger="hookforge"):
        result = hookforge.train(tiny_config(model={"name": "centroid"}, trackers=[
            "local", {"name": "mlflow", "tracking_uri": f"http://127.0.0.1:{port}"}]))
    assert result.status == "finished"
    assert any(f"no MLflow server at 127.0.0.1:{port}" in r.message for r in caplog.records)
    assert time.perf_counter() - started < 4.5  # no retries with back-off against a refusal
