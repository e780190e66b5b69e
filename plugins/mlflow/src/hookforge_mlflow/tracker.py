"""The ``mlflow`` tracker.

Every call to MLflow happens on the background worker of
:class:`~hookforge.tracking.BackgroundTracker`, in batches within MLflow's limits (1000 metrics,
100 params or tags per ``log_batch``). The MLflow run id is kept in ``trackers/mlflow.json`` in the
run directory, so a resumed run continues the same MLflow run and ``hookforge sync`` fills in
exactly what is missing. HPO trials become nested runs under one parent run per study.
"""

from __future__ import annotations

import logging
import os
import re
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from hookforge.errors import UsageError
from hookforge.fileio import atomic_write_json, read_json
from hookforge.tracking import BackgroundTracker, BackgroundTrackerConfig, MetricPoint, RunContext, point_key
from hookforge_mlflow.bulk_metrics import BulkWriter, bulk_writer

log = logging.getLogger("hookforge")

STATUS = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_METRICS, MAX_PARAMS_OR_TAGS, MAX_PARAM_LENGTH = 1000, 100, 6000
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")


class MlflowConfig(BackgroundTrackerConfig):
    tracking_uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlruns.db"),
        description="any MLflow tracking URI: sqlite:///file.db, http://host:port, a file store "
                    "path (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db here)")
    experiment: str | None = Field(None, description="experiment name (default: the study of an HPO "
                                   "trial, else the run name)")
    log_checkpoint: bool = Field(False, description="upload the best checkpoint as artifacts")
    log_model: bool = Field(True, description=(
        "log the trained model under 'model': with its own MLflow flavor where the model plugin has "
        "a pickle-free one, else as a hookforge model served from code (mlflow.pyfunc)"))
    http_retries: int = Field(2, ge=0, description="retries of an HTTP request (MLflow's default is 7 "
                              "with back-off, minutes against a dead server)")
    http_timeout_s: float = Field(10.0, gt=0, description="timeout of one HTTP request")
    # Larger than the base class's default: on a SQLite store the points of one batch are one
    # transaction, and each commit costs ~1 ms of CPU (journal file, fsync): 5120 points went
    # from 4.8 to 3.5 us each. log_batch calls (other stores) keep MLflow's limit of 1000.
    batch_size: int = Field(100_000, ge=1, description=(
        "metric points per call: per transaction on a SQLite store, else cut into log_batch "
        "calls of 1000"))

    @field_validator("experiment")
    @classmethod
    def _experiment_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip() or len(value) > 500):
            raise ValueError("a non-empty experiment name without surrounding spaces, at most 500 "
                             "characters")
        return value


SERVED_FLAVOR = "hookforge"  # the tag value of runs whose model is served_model.py


def save_served_run(run_dir: Path, target: Path, staging: Path) -> None:
    """Save ``run_dir`` as an MLflow model from code (see :mod:`hookforge_mlflow.served_model`):
    its config without trackers (they may hold secrets, redacted in config.yaml, and serving
    does not track), run.json, dataset.json and the other small JSON files, the best checkpoint."""
    import mlflow.pyfunc

    from hookforge.config.loader import dump_yaml
    from hookforge.record import RunRecord

    record = RunRecord.open(run_dir)
    if record.final_checkpoint_dir() is None:
        raise UsageError(f"{run_dir} has no checkpoint to serve")
    # the small JSON files; not splits.json (row indices of the training data)
    record.copy_to(staging, keep=lambda item: item.suffix == ".json" and item.name != "splits.json")
    config = record.read_config()
    config.pop("trackers", None)
    config.pop("searcher", None)
    (staging / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
    requirements = serving_requirements(record.info())
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    pyfunc_log.addFilter(_no_signature_warning)
    try:
        mlflow.pyfunc.save_model(str(target), python_model=str(Path(__file__).with_name("served_model.py")),
                                 artifacts={"run": str(staging)}, pip_requirements=requirements)
    finally:
        pyfunc_log.removeFilter(_no_signature_warning)


def serving_requirements(info: dict[str, Any]) -> list[str]:
    """The pip requirements of a served run: hookforge and the distributions of its data source,
    model (and an ensemble's member models), loop and evaluators, at the versions the run
    recorded. Not every installed plugin: a LightGBM run must not need torch to be served, and
    serving neither tracks nor searches."""
    from hookforge import registry
    from hookforge.errors import PluginError

    components, versions = info.get("components") or {}, info.get("versions") or {}
    members = [m.get("model") for m in (info.get("ensemble") or {}).get("members") or []]
    wanted = [("data", components.get("data")), ("model", components.get("model")),
              ("loop", components.get("loop")),
              *(("evaluator", name) for name in components.get("evaluators") or []),
              *(("model", name) for name in members)]
    distributions = {"hookforge"}
    for kind, name in wanted:
        if isinstance(name, str):
            try:
                distributions.add(registry.find(kind, name).distribution)
            except PluginError:  # registered in-process (hookforge.testing): nothing to install
                pass
    return [f"{name}=={versions[name]}" if isinstance(versions.get(name), str) else name
            for name in sorted(distributions)]


def _no_signature_warning(record: logging.LogRecord) -> bool:
    """The served model has no MLflow signature on purpose (the run's data source checks the
    rows); MLflow would warn about it at every save."""
    return not record.getMessage().startswith("Failed to infer model signature")


def is_file_store(uri: str) -> bool:
    """A plain path or a file: URI, which MLflow keeps in its (file-based) FileStore."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/"))  # C:\...


def check_reachable(uri: str, timeout_s: float) -> None:
    """Fail at once when nothing listens at a tracking server's address: MLflow retries a
    refused connection with back-off (seconds at the end of the run for a server that is down);
    a refusal is not going to change within a run."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "localhost", port),
                                 timeout=min(timeout_s, 5.0)).close()
    except OSError as exc:
        raise ConnectionError(f"no MLflow server at {parsed.hostname}:{port} "
                              f"({exc.strerror or exc})") from None


def mlflow_key(key: str) -> str:
    """MLflow accepts letters, digits, _ - . space and / in metric and param names."""
    return _INVALID_KEY_CHARS.sub("_", key)


class MlflowTracker(BackgroundTracker):
    """Mirror runs into MLflow (SQLite by default, or any tracking server)."""

    Config = MlflowConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.client: Any = None
        self.run_id: str | None = None
        self._run: Any = None
        self._keys: dict[str, str] = {}  # hookforge metric name -> MLflow's
        self._bulk: BulkWriter | None = None  # see bulk_metrics.py; set by open()
        self._created = False  # open() created the MLflow run: it has no params yet

    def start(self, run: Any) -> None:
        self._run = run  # for the trained model at the end (see log_artifact)
        super().start(run)

    def log_artifact(self, path: Path, kind: str) -> None:
        super().log_artifact(path, kind)
        model = getattr(self._run, "model", None)
        if kind == "checkpoint" and self.config.log_model and model is not None:
            # object references only: the worker does the saving
            export = model.mlflow_model() or (SERVED_FLAVOR, self._run.dir, {})
            self._put("artifact", (export, "mlflow_model"))

    # -- helpers ----------------------------------------------------------------------------------
    def _client(self) -> Any:
        if self.client is None:
            # MLflow reads these per request; the user's own settings win.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.config.http_retries))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(self.config.http_timeout_s)))
            # a progress bar per model copy would land in the middle of training's output
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            uri = self.config.tracking_uri
            if is_file_store(uri):
                # MLflow 3 refuses its file store unless asked: a plain path means the user asked
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            elif uri.startswith(("http://", "https://")):
                check_reachable(uri, self.config.http_timeout_s)
            from mlflow import MlflowClient

            self.client = MlflowClient(tracking_uri=self.config.tracking_uri)
        return self.client

    def _experiment_id(self, name: str) -> str:
        client = self._client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # another worker created it in the meantime
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    @staticmethod
    def _state_file(run_dir: Path) -> Path:
        return run_dir / "trackers" / "mlflow.json"

    def _tags(self, context: RunContext) -> dict[str, str]:
        info = context.info
        tags = {"hookforge.run_id": context.run_id, "hookforge.run_dir": str(context.dir.resolve()),
                "hookforge.version": str(info.get("versions", {}).get("hookforge", "")),
                "mlflow.runName": context.name}
        for kind, name in (info.get("components") or {}).items():
            tags[f"hookforge.{kind}"] = ",".join(name) if isinstance(name, list) else str(name)
        for dist, version in (info.get("versions") or {}).items():
            tags[f"hookforge.versions.{dist}"] = str(version)
        git = info.get("git") or {}
        if git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        tags.update({f"tag.{k}": str(v) for k, v in context.tags.items()})
        return tags

    def experiment_name(self, parent: dict[str, Any] | None, run_name: str) -> str:
        """``experiment`` when set; else each search stage its own experiment,
        ``<study>-hpo-<stage>`` (``<study>-hpo`` for a single-stage search), and training runs
        ``<run name>-train``, so a stage's trials are compared with each other only."""
        if self.config.experiment:
            return self.config.experiment
        if parent and parent.get("study"):
            stage = parent.get("stage")
            return f"{parent['study']}-hpo" + (f"-{stage}" if stage else "")
        return f"{run_name}-train"

    def end_study(self, session: Any, result: Any) -> None:
        """Mark the parent run of every stage the search ran FINISHED (they stayed RUNNING)."""
        stages = [s["stage"] for s in result.extra.get("stages") or []] \
            or [result.extra.get("stage") or session.stage]
        client = self._client()
        for stage in stages:
            parent = {"study": session.study, "stage": stage}
            found = client.get_experiment_by_name(self.experiment_name(parent, session.study))
            if found is None:
                continue
            for parent_run in client.search_runs([found.experiment_id], filter_string=(
                    f"tags.`hookforge.study` = '{session.study}' and tags.`hookforge.role` = "
                    f"'study' and tags.`hookforge.stage` = '{stage or ''}' and "
                    f"attributes.status = 'RUNNING'")):
                client.set_terminated(parent_run.info.run_id, status="FINISHED")

    def _parent_run(self, experiment_id: str, parent: dict[str, Any]) -> str:
        """The study's parent run (created by the first trial that needs it)."""
        client = self._client()
        study = str(parent.get("study"))
        stage = parent.get("stage") or ""
        found = client.search_runs([experiment_id], filter_string=(
            f"tags.`hookforge.study` = '{study}' and tags.`hookforge.role` = 'study' "
            f"and tags.`hookforge.stage` = '{stage}'"), max_results=1)
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment_id, run_name=f"{study}{'-' + stage if stage else ''}",
                                tags={"hookforge.study": study, "hookforge.role": "study",
                                      "hookforge.stage": stage})
        return run.info.run_id

    # -- the BackgroundTracker interface ------------------------------------------------------------
    def open(self, context: RunContext) -> None:
        client = self._client()
        self._bulk = bulk_writer(client)
        state_file = self._state_file(context.dir)
        if state_file.exists():
            state = read_json(state_file)
            if state.get("tracking_uri") == self.config.tracking_uri:
                self.run_id = state["run_id"]
                try:
                    client.update_run(self.run_id, status="RUNNING")
                    return
                except Exception as exc:  # deleted in MLflow, or another store: start afresh
                    if "RESOURCE_DOES_NOT_EXIST" not in str(exc) and "not found" not in str(exc).lower():
                        raise
        parent = context.parent or {}
        experiment_id = self._experiment_id(self.experiment_name(parent, context.name))
        tags = self._tags(context)
        if parent.get("study"):
            tags["mlflow.parentRunId"] = self._parent_run(experiment_id, parent)
            tags["hookforge.study"] = str(parent["study"])
            tags["hookforge.stage"] = str(parent.get("stage") or "")
            tags["hookforge.trial"] = str(parent.get("trial"))
        run = client.create_run(experiment_id, run_name=context.name,
                                tags={k: v[:5000] for k, v in tags.items()})
        self.run_id = run.info.run_id
        self._created = True
        atomic_write_json(state_file, {"tracking_uri": self.config.tracking_uri,
                                       "experiment_id": experiment_id, "run_id": self.run_id})

    def send_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(mlflow_key(k)[:250], str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        if not self._created:  # resumed or synced: params are immutable in MLflow
            existing = self._client().get_run(self.run_id).data.params
            items = [p for p in items if p.key not in existing]
        for i in range(0, len(items), MAX_PARAMS_OR_TAGS):
            self._client().log_batch(self.run_id, params=items[i:i + MAX_PARAMS_OR_TAGS])

    def send_metrics(self, points: list[MetricPoint]) -> None:
        keys = self._keys
        for key in set(map(itemgetter(0), points)).difference(keys):
            keys[key] = mlflow_key(key)
        if self._bulk is not None:
            try:
                self._bulk(self.run_id, [(keys[key], value, timestamp, step)
                                         for key, value, step, _, timestamp in points])
                return
            except Exception as exc:  # rolled back; MLflow's own path from now on
                log.debug("mlflow: bulk metric write failed (%s), using log_batch", exc)
                self._bulk = None
        from mlflow.entities import Metric

        metrics = [Metric(keys[p.key], p.value, p.timestamp_ms, p.step) for p in points]
        for i in range(0, len(metrics), MAX_METRICS):
            self._client().log_batch(self.run_id, metrics=metrics[i:i + MAX_METRICS])

    def send_artifact(self, path: Any, kind: str) -> None:
        client = self._client()
        if kind == "mlflow_model":
            self._send_model(*path)
        elif kind == "figure":
            client.log_artifact(self.run_id, str(path), "figures")
        elif kind == "checkpoint":
            if self.config.log_checkpoint:
                client.log_artifacts(self.run_id, str(path), "checkpoint")
        elif path.is_file():
            client.log_artifact(self.run_id, str(path))

    def _send_model(self, flavor: str, model: Any, options: dict[str, Any]) -> None:
        """Save ``model`` with ``mlflow.<flavor>.save_model`` (or, for the served flavor, the run
        directory ``model`` as a model from code) and upload it as the run's 'model' artifact, so
        ``mlflow.pyfunc.load_model("runs:/<id>/model")`` loads it."""
        import importlib
        import tempfile

        try:
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / "model"
                if flavor == SERVED_FLAVOR:
                    save_served_run(Path(model), target, Path(tmp) / "run")
                else:
                    importlib.import_module(f"mlflow.{flavor}").save_model(model, str(target), **options)
                self._client().log_artifacts(self.run_id, str(target), "model")
        except Exception as exc:  # the run and its checkpoint are fine; only this copy is missing
            log.warning("mlflow: could not log the model with the '%s' flavor: %s", flavor, exc)
            return
        self._client().set_tag(self.run_id, "hookforge.model_flavor", flavor)

    def sync(self, record: Any) -> str:
        message = super().sync(record)
        # the model, when the outage also lost it (any model can be served from its record)
        has_model = self._client().get_run(self.run_id).data.tags.get("hookforge.model_flavor")
        if self.config.log_model and not has_model and record.final_checkpoint_dir():
            self._send_model(SERVED_FLAVOR, record.path, {})
        return message

    def send_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "stop_requested":  # early stopping, or a pruned HPO trial
            self._client().set_tag(self.run_id, "hookforge.stop_reason", str(payload.get("reason")))

    def close(self, status: str) -> None:
        self._client().set_terminated(self.run_id, status=STATUS.get(status, "FINISHED"))

    def existing_points(self) -> list[tuple[str, int, Any]]:
        client = self._client()
        return [point_key(metric.key, metric.step, metric.value)
                for key in client.get_run(self.run_id).data.metrics
                for metric in client.get_metric_history(self.run_id, key)]

    def tracker_key(self, key: str) -> str:
        return mlflow_key(key)

    # -- champion selection (hookforge compare --tracker mlflow) ------------------------------------
    def query_runs(self, experiment: str, metric: str) -> list[dict[str, Any]]:
        """Finished runs of ``experiment`` with their value of ``metric``."""
        client = self._client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise UsageError(f"MLflow experiment '{experiment}' not found at {self.config.tracking_uri}")
        runs = client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=5000)
        key = mlflow_key(metric)
        return [{"run_id": r.info.run_id, "name": r.info.run_name, "value": r.data.metrics.get(key),
                 "run_dir": r.data.tags.get("hookforge.run_dir"),
                 "n_samples": r.data.metrics.get(mlflow_key(metric.split("/")[0] + "/n_samples"))}
                for r in runs if r.data.tags.get("hookforge.role") != "study"]

    def register_champion(self, run_id: str, model_name: str) -> str:
        """Register the run's checkpoint as a new version of ``model_name`` with alias champion."""
        client = self._client()
        try:
            client.create_registered_model(model_name)
        except Exception as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        run = client.get_run(run_id)
        if run.data.tags.get("hookforge.model_flavor"):  # an MLflow model: loadable from the registry
            version = client.create_model_version(model_name, f"{run.info.artifact_uri}/model",
                                                  run_id=run_id)
            client.set_registered_model_alias(model_name, "champion", version.version)
            return str(version.version)
        source = f"{run.info.artifact_uri}/checkpoint"
        run_dir = run.data.tags.get("hookforge.run_dir")
        if run_dir and Path(run_dir).is_dir():  # make sure the weights are in the artifact store
            from hookforge.record import RunRecord

            best = RunRecord(run_dir).final_checkpoint_dir()
            if best is not None:
                client.log_artifacts(run_id, str(best), "checkpoint")
        version = client.create_model_version(model_name, source, run_id=run_id)
        client.set_registered_model_alias(model_name, "champion", version.version)
        return str(version.version)
