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
        from hookforge.fileio import check_writable_dir

        check_writable_dir(self.study_dir, "run.output_dir: the study folder")
        result = self.hook.hookforge_search(session=self)
        if result is None:
            raise UsageError(f"searcher '{self.config.searcher.name}' returned no result")
        self.hook.hookforge_after_search(session=self, result=result)
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
                  metric: str | list[str] | None = None, plugins: Iterable[object] = (),
                  score_test: bool = False) -> TrialResult:
        """Train the base config with ``overrides`` as its own run. Bad input (an unknown path, a
        metric that was never logged) raises; a crash inside the trial marks it failed.

        A trial is evaluated on ``val`` only: scoring test in every trial invites choosing on
        test. ``score_test`` is for refits of the chosen config."""
        from hookforge.run import Run

        if metric is not None:
            check_objectives([metric] if isinstance(metric, str) else metric)

        name = f"{self.study}-{self.stage + '-' if self.stage else ''}trial{number:04d}"
        config = self.trial_config(overrides, name)
        run_dir = directory or self.study_dir / (self.stage or "") / "trials" / f"trial_{number:04d}"
        parent = {"study": self.study, "stage": self.stage, "trial": number,
                  "params": json.loads(json.dumps(overrides, default=str))}
        reused = self._reuse(run_dir, parent, number, overrides, metric)
        if reused is not None:
            return reused
        run = Run(config, run_dir=run_dir, plugins=[*self.plugins, *plugins], command=self.command,
                  parent=parent, evaluate_splits=("val", "test") if score_test else ("val",))
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
        try:
            info = record.info()
        except (OSError, ValueError):
            info = {}
        if (info.get("parent") or {}).get("study") != self.study:
            # not a trial of this study: hookforge deletes only what it wrote itself
            raise UsageError(f"{run_dir} holds a record that is not a trial of study "
                             f"'{self.study}'; move it away or choose another run.output_dir")
        if info.get("status") != "finished" or info.get("parent") != parent:
            shutil.rmtree(run_dir)  # an unfinished or outdated attempt of this study's trial
            return None
        metrics = trial_metrics(record)
        state = "pruned" if info.get("stop_reason") == "pruned" else "complete"
        trial = TrialResult(number=number, params=dict(overrides), state=state, metrics=metrics,
                            run_dir=run_dir, duration_s=info.get("duration_s"))
        if metric is not None and state == "complete":
            trial.value = objective_value(metrics, metric)
        log.info("trial %d already finished in %s; reusing it", number, run_dir)
        return trial


class SearchProgress:
    """One line per finished trial on the ``hookforge`` logger: the stage, trial i of n, its
    outcome, the best value so far, elapsed time and an ETA from the mean trial time."""

    def __init__(self, total: int, metric: str | None, direction: str | None,
                 stage: str | None = None, done: int = 0) -> None:
        self.total, self.metric, self.direction, self.stage = total, metric, direction, stage
        self.done, self.started, self.run_here = done, time.time(), 0
        self.best: tuple[float, int] | None = None

    def update(self, trial: TrialResult) -> None:
        self.done += 1
        self.run_here += 1
        value = trial.value[0] if isinstance(trial.value, list) else trial.value
        if trial.state == "complete" and isinstance(value, (int, float)) and self.direction:
            better = self.best is None or (value > self.best[0] if self.direction == "maximize"
                                           else value < self.best[0])
            if better:
                self.best = (float(value), trial.number)
        elapsed = time.time() - self.started
        left = max(self.total - self.done, 0)
        eta = elapsed / self.run_here * left
        outcome = trial.state if not isinstance(value, (int, float)) else f"{value:.4g}"
        best = f"best {self.best[0]:.4g} (#{self.best[1]})" if self.best else "best -"
        where = f"stage {self.stage}: " if self.stage else ""
        log.info("%strial %d/%d  #%d %s  %s  elapsed %s  eta %s", where, min(self.done, self.total),
                 self.total, trial.number, outcome, best, _duration(elapsed), _duration(eta))


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def check_objectives(metrics: list[str]) -> None:
    """Search objectives are validation metrics: choosing a configuration by its test score
    leaks the test split into the choice."""
    for metric in metrics:
        if metric.split("/", 1)[0] == "test":
            raise ConfigError(f"search metric '{metric}': trials are not scored on the test split "
                              f"(choosing on test biases it); use val/{metric.split('/', 1)[-1]} "
                              f"and score the refit or champion on test")


def best_trials(trials: list[TrialResult], direction: str) -> tuple[list[TrialResult], str]:
    """The complete trials with the best value (several when they tie) and a line that says so
    when they do, or when every trial scored the same. Ties keep the lowest trial number first,
    the rule every ``compare`` path uses too."""
    done = [t for t in trials if t.state == "complete" and isinstance(t.value, (int, float))]
    if not done:
        return [], "no trial completed with a value"
    sign = -1 if direction == "maximize" else 1
    ordered = sorted(done, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    best_value = ordered[0].value
    tied = [t for t in ordered if t.value == best_value]
    if len(done) > 1 and len(tied) == len(done):
        note = f"every trial scored the same ({best_value:.6g}): the search told nothing apart; " \
               f"trial {tied[0].number} is kept"
    elif len(tied) > 1:
        note = (f"trials {', '.join(str(t.number) for t in tied)} tie at {best_value:.6g}; "
                f"trial {tied[0].number} (the first) is kept")
    else:
        note = ""
    return tied, note


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

    # the trial's parameters only: tracker settings a stage gave its trials (an experiment per
    # stage...) are not part of the configuration that was chosen
    params = {k: v for k, v in trial.params.items() if not k.split(".", 1)[0] == "trackers"}
    config = session.trial_config(params, f"{session.study}-best").to_dict()
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
