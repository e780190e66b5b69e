"""The ``comet`` tracker.

Online (``comet_ml.Experiment``) when an API key is set in ``COMET_API_KEY``, otherwise a
``comet_ml.OfflineExperiment`` that writes its archive under ``RUN_DIR/comet/``; the state file
``trackers/comet.json`` names the archive and the command that uploads it. Comet's auto-logging is
off: hookforge sends exactly the record, and comet never patches torch or scikit-learn. Offline,
comet_ml's own error reporting to Sentry is off too (``COMET_ERROR_TRACKING_ENABLE``), so nothing
leaves the machine. The API key is read from the environment and never written anywhere.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hookforge.fileio import atomic_write_json, read_json
from hookforge.tracking import BackgroundTracker, BackgroundTrackerConfig, MetricPoint, RunContext

log = logging.getLogger("hookforge")

QUIET = {  # everything comet would collect by itself, off
    "log_code": False, "log_graph": False, "auto_param_logging": False,
    "auto_metric_logging": False, "parse_args": False, "auto_output_logging": False,
    "log_env_details": False, "log_git_metadata": False, "log_git_patch": False,
    "log_env_gpu": False, "log_env_host": False, "log_env_cpu": False, "log_env_network": False,
    "log_env_disk": False, "display_summary_level": 0,
}


class CometConfig(BackgroundTrackerConfig):
    project: str | None = Field(None, description="Comet project (default: the study, else the run name)")
    workspace: str | None = Field(None, description="Comet workspace (default: the API key's)")
    mode: Literal["auto", "online", "offline"] = Field(
        "auto", description="auto: online when COMET_API_KEY is set, else offline")
    log_checkpoint: bool = Field(False, description="upload the best checkpoint as assets")


class CometTracker(BackgroundTracker):
    """Mirror runs into Comet (an offline archive without an API key)."""

    Config = CometConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.experiment: Any = None
        self.state: dict[str, Any] = {}
        self._warned_nan = False

    def _online(self) -> bool:
        if self.config.mode == "auto":
            return bool(os.environ.get("COMET_API_KEY"))
        return self.config.mode == "online"

    @staticmethod
    def _state_file(run_dir: Path) -> Path:
        return run_dir / "trackers" / "comet.json"

    def open(self, context: RunContext) -> None:
        os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
        if not self._online():  # its INFO lines repeat the upload hint hookforge prints itself
            os.environ.setdefault("COMET_LOGGING_CONSOLE", "WARNING")
            # comet_ml reports its own errors to Sentry (sentry.io) from half of the processes
            # that import it, decided by a coin toss at import: an offline run stays offline
            os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
        import comet_ml

        state_file = self._state_file(context.dir)
        previous = read_json(state_file) if state_file.exists() else {}
        parent = context.parent or {}
        project = self.config.project or parent.get("study") or context.name
        project = str(project).lower().replace(" ", "-")
        key = previous.get("experiment_key")
        if self._online():
            if key and previous.get("mode") == "online":
                self.experiment = comet_ml.ExistingExperiment(experiment_key=key, **QUIET)
            else:
                self.experiment = comet_ml.Experiment(project_name=project,
                                                      workspace=self.config.workspace, **QUIET)
            self.state = {"mode": "online", "experiment_key": self.experiment.get_key(),
                          "project": project}
        else:
            directory = context.dir / "comet"
            directory.mkdir(exist_ok=True)
            options: dict[str, Any] = {"experiment_key": key} if key else {}
            self.experiment = comet_ml.OfflineExperiment(
                project_name=project, workspace=self.config.workspace,
                offline_directory=str(directory), **options, **QUIET)
            archive = (directory / f"{self.experiment.get_key()}.zip").resolve()
            self.state = {"mode": "offline", "experiment_key": self.experiment.get_key(),
                          "project": project, "archive": str(archive),
                          "upload": f"comet upload {archive}"}
        atomic_write_json(state_file, self.state)
        self.experiment.set_name(context.name)
        tags = [f"{k}:{v}" for k, v in context.tags.items()]
        for kind, name in (context.info.get("components") or {}).items():
            if isinstance(name, str):
                tags.append(f"{kind}:{name}")
        if parent.get("study"):
            tags += [f"study:{parent['study']}", f"trial:{parent.get('trial')}"]
            self.experiment.log_other("hookforge.study", parent["study"])
        self.experiment.add_tags(tags)
        for dist, version in (context.info.get("versions") or {}).items():
            self.experiment.log_other(f"version.{dist}", version)
        git = context.info.get("git") or {}
        if git.get("commit"):
            self.experiment.log_other("git.commit", git["commit"])
        self.experiment.log_other("hookforge.run_dir", str(context.dir.resolve()))

    def send_params(self, params: dict[str, Any]) -> None:
        self.experiment.log_parameters(params)

    def send_metrics(self, points: list[MetricPoint]) -> None:
        by_step: dict[tuple[int, int | None], dict[str, float]] = {}
        for point in points:
            if not math.isfinite(point.value):  # comet rejects NaN and infinities
                if not self._warned_nan:
                    log.warning("tracker 'comet' skips non-finite metric values (%s = %s); the "
                                "local record keeps them", point.key, point.value)
                    self._warned_nan = True
                continue
            by_step.setdefault((point.step, point.epoch), {})[point.key] = point.value
        for (step, epoch), values in by_step.items():
            self.experiment.log_metrics(values, step=step, epoch=epoch)

    def send_artifact(self, path: Path, kind: str) -> None:
        if kind == "figure":
            self.experiment.log_image(str(path), name=path.stem)
        elif kind == "evaluation":
            self.experiment.log_asset(str(path), file_name=path.name)
            self._confusion_matrices(path)
        elif kind == "config":
            self.experiment.log_asset(str(path), file_name=path.name)
        elif kind == "checkpoint" and self.config.log_checkpoint:
            self.experiment.log_asset_folder(str(path), log_file_name=True)

    def _confusion_matrices(self, evaluation_file: Path) -> None:
        evaluation = read_json(evaluation_file)
        dataset_file = evaluation_file.with_name("dataset.json")
        classes = (read_json(dataset_file).get("classes") if dataset_file.exists() else None) or None
        for split, metrics in evaluation.items():
            matrix = metrics.get("confusion_matrix")
            if matrix:
                labels = [str(c) for c in classes] if classes and len(classes) == len(matrix) else None
                self.experiment.log_confusion_matrix(matrix=matrix, labels=labels,
                                                     title=f"confusion matrix ({split})",
                                                     file_name=f"confusion_matrix_{split}.json")

    def send_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "stop_requested":  # early stopping, or a pruned HPO trial
            self.experiment.log_other("stop_reason", str(payload.get("reason")))
            self.experiment.add_tag(f"stopped:{payload.get('reason')}")

    def close(self, status: str) -> None:
        self.experiment.log_other("status", status)
        self.experiment.end()
        if self.state.get("mode") == "offline":
            log.info("comet offline archive: %s (upload it with `%s`)", self.state["archive"],
                     self.state["upload"])

    def existing_points(self) -> list[tuple[str, int, Any]]:
        if self.state.get("mode") != "online":
            return []  # an offline sync rewrites the whole archive under the same key
        import comet_ml

        from hookforge.tracking import point_key

        api_experiment = comet_ml.API().get_experiment_by_key(self.state["experiment_key"])
        return [point_key(m["metricName"], int(m.get("step") or 0), float(m["metricValue"]))
                for m in api_experiment.get_metrics()]
