"""The comet tracker in offline mode: the archive comet_ml writes holds the run."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import hookforge
from hookforge.config.secrets import flatten
from hookforge.record import RunRecord

COMET_OWN = {"process duration"}  # comet's own metrics


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("COMET_API_KEY", raising=False)


def archive_messages(run_dir: Path) -> list[dict]:
    state = json.loads((run_dir / "trackers" / "comet.json").read_text())
    assert state["mode"] == "offline" and state["upload"].startswith("comet upload ")
    with zipfile.ZipFile(state["archive"]) as archive:
        return [json.loads(line) for line in archive.read("messages.json").decode().splitlines()]


def metric_counts(messages: list[dict]) -> Counter:
    return Counter(m["payload"]["metric"]["metricName"] for m in messages
                   if m["type"] == "metric_msg"
                   and m["payload"]["metric"]["metricName"] not in COMET_OWN)


def local_counts(run_dir: Path) -> Counter:
    return Counter(f"{r['split']}/{r['name']}" for r in RunRecord.open(run_dir).read_metrics())


def test_offline_archive_holds_params_and_every_metric_point(tiny_config):
    result = hookforge.train(tiny_config(model={"name": "centroid"}, trackers=["local", "comet"]))
    messages = archive_messages(result.run_dir)
    # comet writes list values as "params" and scalars as "param"
    params = {(m["payload"].get("params") or m["payload"].get("param"))["paramName"]
              for m in messages if m["type"] == "parameter_msg"}
    expected = set(flatten(RunRecord.open(result.run_dir).read_config()))
    assert expected <= params
    assert metric_counts(messages) == local_counts(result.run_dir)
    steps = {(m["payload"]["metric"]["metricName"], m["payload"]["metric"]["step"])
             for m in messages if m["type"] == "metric_msg"}
    assert ("test/accuracy", 1) in steps
    uploads = [m for m in messages if m["type"] == "file_upload"]
    assert len(uploads) >= 3  # config, evaluation, confusion matrices, figures


def test_offline_runs_leave_comets_error_reporting_off(tiny_config, monkeypatch):
    """comet_ml turns on Sentry error reporting (to sentry.io) in half of the processes that
    import it; the coin is forced to land on "report" here, and an offline run must still not
    set up a reporting client."""
    import subprocess
    import sys

    monkeypatch.delenv("COMET_ERROR_TRACKING_ENABLE", raising=False)
    code = (
        "import json, random, sys\n"
        "random.random = lambda: 0.9  # comet_ml's coin toss at import: report\n"
        "import hookforge, sentry_sdk\n"
        "hookforge.train(json.loads(sys.argv[1]))\n"
        "import comet_ml  # noqa: F401  (imported by the run)\n"
        "print('reporting' if sentry_sdk.get_client().is_active() else 'quiet')\n")
    config = tiny_config(model={"name": "centroid"}, trackers=["local", "comet"])
    done = subprocess.run([sys.executable, "-c", code, json.dumps(config)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "quiet"


def test_api_key_never_reaches_a_record(tiny_config, monkeypatch):
    secret = "cmt-sEcReT-0123456789"
    monkeypatch.setenv("COMET_API_KEY", secret)
    result = hookforge.train(tiny_config(model={"name": "centroid"},
                                         trackers=["local", {"name": "comet", "mode": "offline"}]))
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data, path
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    for name in archive.namelist():
                        assert secret.encode() not in archive.read(name), (path, name)


def test_comet_and_mlflow_see_the_same_points(tiny_config):
    from mlflow import MlflowClient

    result = hookforge.train(tiny_config(
        model={"name": "centroid"},
        trackers=["local", "comet", {"name": "mlflow", "tracking_uri": "sqlite:///both.db"}]))
    run_id = json.loads((result.run_dir / "trackers" / "mlflow.json").read_text())["run_id"]
    client = MlflowClient("sqlite:///both.db")
    mlflow = Counter({k: len(client.get_metric_history(run_id, k))
                      for k in client.get_run(run_id).data.metrics})
    assert metric_counts(archive_messages(result.run_dir)) == mlflow == local_counts(result.run_dir)


def test_sync_rewrites_the_archive_idempotently(tiny_config, hookforge_cli):
    result = hookforge.train(tiny_config(model={"name": "centroid"}))  # no comet during training
    for _ in range(2):
        synced = hookforge_cli("sync", result.run_dir, "--tracker", "comet",
                               env={"COMET_API_KEY": ""})
        assert synced.returncode == 0, synced.stderr
        assert metric_counts(archive_messages(result.run_dir)) == local_counts(result.run_dir)
    assert len(list((result.run_dir / "comet").glob("*.zip"))) == 1


def test_nan_values_are_skipped_with_one_warning(tiny_config, caplog):
    class NanLogger:
        @hookforge.hookimpl
        def hookforge_after_epoch(self, run, result):
            run.log_metrics({"odd": float("nan"), "odd2": float("inf")}, step=result.step, split="val")

    with caplog.at_level("WARNING", logger="hookforge"):
        result = hookforge.Run.from_config(tiny_config(model={"name": "centroid"},
                                                       trackers=["local", "comet"]),
                                           plugins=[NanLogger()]).fit()
    assert [r for r in caplog.records if "skips non-finite" in r.getMessage()].__len__() == 1
    assert "val/odd" in local_counts(result.run_dir)
    assert "val/odd" not in metric_counts(archive_messages(result.run_dir))
