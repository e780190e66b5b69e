"""What every searcher shares: running one trial as a full run, and writing the study's outputs.

A searcher (``grid``, ``optuna``...) decides *which* overrides to try; :class:`SearchSession`
turns each set of overrides into a child :class:`~hookforge.run.Run` with its own run directory,
and collects its metrics into a :class:`~hookforge.types.TrialResult`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hookforge import hookspecs
from hookforge.config import ResolvedConfig, flatten, resolve
from hookforge.config.loader import set_all
from hookforge.errors import ConfigError, RunInterrupted, UsageError, did_you_mean
from hookforge.fileio import atomic_write_json, atomic_write_text
from hookforge.markers import PluginManager
from hookforge.record import RunRecord
from hookforge.types import SearchResult, TrialResult

log = logging.getLogger("hookforge")

MINIMIZE_HINTS = ("loss", "error", "mse", "mae", "rmse", "latency", "time", "perplexity", "nll")


def default_direction(metric: str) -> str:
    """``minimize`` for losses, errors and times, ``maximize`` for everything else."""
    name = metric.rsplit("/", 1)[-1].lower()
    return "minimize" if any(hint in name for hint in MINIMIZE_HINTS) else "maximize"


class SearchSession:
    """One invocation of ``hookforge search``: the base config, the study's directory, and
    :meth:`run_trial`. ``session.hook`` reaches the searcher and the study-level plugins."""

    def __init__(self, config: ResolvedConfig, *, study: str | None = None,
                 stage: str | None = None, storage: str | None = None, workers: int = 1,
                 sweep: dict[str, list[Any]] | None = None, plugins: Iterable[object] = (),
                 command: list[str] | None = None) -> None:
        if config.searcher is None:
            raise ConfigError(f"{config.source}: the 'searcher' section is missing "
                              f"(e.g. searcher: {{name: grid}})")
        self.config = config
        self.base = config.to_dict()
        self.base.pop("searcher", None)
        self.study = study or config.run.name
        self.stage = stage
        self.storage = storage
        self.workers = workers
        self.sweep = sweep or {}
        self.command = command
        self.output_dir = Path(config.run.output_dir)
        self.study_dir = self.output_dir / "hpo" / self.study
        self.pm = PluginManager()
        self.pm.add_hookspecs(hookspecs)
        self.hook = self.pm.hook
        self.searcher = config.searcher.create()
        self.pm.register(self.searcher, name=f"searcher:{config.searcher.name}")
        self.trackers = [spec.create() for spec in config.trackers]
        for tracker in self.trackers:  # study-level tracking (e.g. a parent run for nested trials)
            self.pm.register(tracker, name=f"tracker:{tracker.plugin_name}")
        self.plugins = list(plugins)  # observers of the study and of every trial run
        for plugin in self.plugins:
            self.pm.register(plugin)

    def search(self) -> SearchResult:
        result = self.hook.hookforge_search(session=self)
        if result is None:
            raise UsageError(f"searcher '{self.config.searcher.name}' returned no result")
        return result

    # -- trials -------------------------------------------------------------------------------
    def config_keys(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The flattened config trials start from (with ``overrides``, e.g. a stage's)."""
        if not overrides:
            return flatten(self.base)
        config = self.trial_config(overrides, self.study).to_dict()
        config.pop("searcher", None)
        return flatten(config)

    def check_path(self, dotted: str, keys: dict[str, Any] | None = None) -> None:
        """Raise ConfigError when ``dotted`` is not a key of the config (``keys``: from
        :meth:`config_keys`, default the base config's), so that a typo in a search space fails
        before the first trial."""
        flat = self.config_keys() if keys is None else keys
        if dotted in flat or any(k.startswith(dotted + ".") for k in flat):
            return
        raise ConfigError(f"search space: '{dotted}' is not a config key"
                          f"{did_you_mean(dotted, flat)}")

    def trial_config(self, overrides: dict[str, Any], name: str) -> ResolvedConfig:
        """The base config with ``overrides`` (as on the command line: switching a component,
        ``model.name: xgboost``, starts that section from the new plugin's defaults)."""
        raw = copy.deepcopy(self.base)
        set_all(raw, list(overrides.items()))
        raw["run"]["name"] = name
        return resolve(raw, source=f"trial '{name}'")

    def run_trial(self, overrides: dict[str, Any], *, number: int, directory: Path | None = None,
                  metric: str | list[str] | None = None, plugins: Iterable[object] = ()) -> TrialResult:
        """Train the base config with ``overrides`` as its own run. Bad input (an unknown path, a
        metric that was never logged) raises; a crash inside the trial marks it failed."""
        from hookforge.run import Run

        name = f"{self.study}-{self.stage + '-' if self.stage else ''}trial{number:04d}"
        config = self.trial_config(overrides, name)
        run_dir = directory or self.study_dir / (self.stage or "") / "trials" / f"trial_{number:04d}"
        parent = {"study": self.study, "stage": self.stage, "trial": number,
                  "params": json.loads(json.dumps(overrides, default=str))}
        reused = self._reuse(run_dir, parent, number, overrides, metric)
        if reused is not None:
            return reused
        run = Run(config, run_dir=run_dir, plugins=[*self.plugins, *plugins], command=self.command,
                  parent=parent)
        started = time.time()
        state, error = "complete", None
        try:
            run.fit()
            if run.stop_reason == "pruned":
                state = "pruned"
        except (RunInterrupted, KeyboardInterrupt):
            raise
        except UsageError:
            raise
        except Exception as exc:  # a trial that crashes is recorded as failed; the study goes on
            state, error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("trial %d failed: %s", number, error)
        metrics = trial_metrics(run.record)
        trial = TrialResult(number=number, params=dict(overrides), state=state, metrics=metrics,
                            run_dir=run.dir if run.record else None,
                            duration_s=round(time.time() - started, 3), error=error)
        if metric is not None and state == "complete":
            trial.value = objective_value(metrics, metric)
        self.hook.hookforge_after_trial(session=self, trial=trial)
        return trial

    def _reuse(self, run_dir: Path, parent: dict[str, Any], number: int,
               overrides: dict[str, Any], metric: str | list[str] | None) -> TrialResult | None:
        """The result of a trial that already finished in ``run_dir`` with the same parameters;
        a directory left by an unfinished attempt is cleared for a fresh one."""
        if not (run_dir / "run.json").exists():
            if run_dir.exists() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            return None
        record = RunRecord(run_dir)
        info = record.info()
        if info.get("status") != "finished" or info.get("parent") != parent:
            shutil.rmtree(run_dir)
            return None
        metrics = trial_metrics(record)
        state = "pruned" if info.get("stop_reason") == "pruned" else "complete"
        trial = TrialResult(number=number, params=dict(overrides), state=state, metrics=metrics,
                            run_dir=run_dir, duration_s=info.get("duration_s"))
        if metric is not None and state == "complete":
            trial.value = objective_value(metrics, metric)
        log.info("trial %d already finished in %s; reusing it", number, run_dir)
        return trial


def trial_metrics(record: RunRecord | None) -> dict[str, float]:
    """``split/name`` -> value: the last logged value of every series, then evaluation.json."""
    if record is None:
        return {}
    metrics: dict[str, float] = {}
    for row in record.read_metrics():
        metrics[f"{row['split']}/{row['name']}"] = row["value"]
    for split, values in record.evaluation().items():
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{split}/{name}"] = float(value)
    return metrics


def objective_value(metrics: dict[str, float], metric: str | list[str]) -> float | list[float]:
    """The objective value(s) of a trial; a metric the run never logged is bad input."""
    names = [metric] if isinstance(metric, str) else list(metric)
    values = []
    for name in names:
        if name not in metrics:
            raise UsageError(f"objective metric '{name}' was never logged by the trial"
                             f"{did_you_mean(name, metrics)}; it logged: "
                             f"{', '.join(sorted(metrics)) or 'nothing'}")
        values.append(metrics[name])
    return values[0] if isinstance(metric, str) else values


def write_trials(trials: list[TrialResult], directory: Path) -> None:
    """trials.json (everything) and trials.csv (one row per trial, params and metrics as
    columns) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "trials.json", [t.to_dict() for t in trials])
    param_keys = sorted({k for t in trials for k in t.params})
    metric_keys = sorted({k for t in trials for k in t.metrics})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", "value", "duration_s", "run_dir",
                     *[f"param:{k}" for k in param_keys], *metric_keys])
    for t in trials:
        value = json.dumps(t.value) if isinstance(t.value, list) else t.value
        writer.writerow([t.number, t.state, value, t.duration_s, t.run_dir or "",
                         *[_cell(t.params.get(k)) for k in param_keys],
                         *[t.metrics.get(k, "") for k in metric_keys]])
    atomic_write_text(directory / "trials.csv", buffer.getvalue())


def write_best_config(session: SearchSession, trial: TrialResult, directory: Path) -> Path:
    """best_config.yaml: the full config of ``trial``, ready for ``hookforge train -c``."""
    from hookforge.config.loader import dump_yaml
    from hookforge.config.secrets import redact

    config = session.trial_config(trial.params, f"{session.study}-best").to_dict()
    target = directory / "best_config.yaml"
    atomic_write_text(target, dump_yaml(redact(config)))
    return target


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def tune(config: str | Path | dict[str, Any] | ResolvedConfig, overrides: Iterable[str] = (),
         **options: Any) -> SearchResult:
    """Run a config's searcher from Python, as ``hookforge search`` does:
    ``hookforge.tune("configs/hpo/gbm_breast_cancer.yaml", ["searcher.n_trials=5"], stage="xgboost")``.
    ``options`` go to :class:`SearchSession` (``study``, ``stage``, ``storage``, ``workers``,
    ``plugins``)."""
    from hookforge.config import load_config

    if not isinstance(config, ResolvedConfig):
        config = load_config(config, list(overrides))
    return SearchSession(config, **options).search()
