"""Running a plan: each stage is an optuna study (``<study>.<stage>``) in one storage, driven with
ask/tell so every trial is a full hookforge run with its own directory and tracker run.

Outputs per stage, in ``OUTPUT_DIR/hpo/<study>/<stage>/``: trials.csv, trials.json,
best_config.yaml, summary.json and PNG plots. No pickle anywhere: the study lives in its storage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna

from hookforge import hookimpl
from hookforge.config.secrets import redact_text
from hookforge.errors import ConfigError, RunInterrupted, UsageError, did_you_mean
from hookforge.fileio import atomic_write_json, atomic_write_text, read_json
from hookforge.record import pid_alive
from hookforge.search import (
    SearchProgress,
    SearchSession,
    best_trials,
    check_objectives,
    trial_metrics,
    write_best_config,
    write_trials,
)
from hookforge.seeds import derive_seed
from hookforge.types import SearchResult, TrialResult
from hookforge_optuna.plots import draw_plots
from hookforge_optuna.searcher import OptunaConfig, StageConfig
from hookforge_optuna.space import ParamSpec, narrow, suggest

log = logging.getLogger("hookforge")
optuna.logging.set_verbosity(optuna.logging.WARNING)

WORKER_ENV = "HOOKFORGE_SEARCH_WORKER"
WORKER_INDEX_ENV = "HOOKFORGE_SEARCH_WORKER_INDEX"  # 1..N-1 for the workers --workers N spawns
ORPHAN_GRACE_S = 60.0  # a trial without an owner this old was created by a killed process
STATES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
          optuna.trial.TrialState.FAIL: "failed", optuna.trial.TrialState.RUNNING: "running",
          optuna.trial.TrialState.WAITING: "waiting"}


class PruningObserver:
    """Reports each epoch's objective to the optuna trial and stops the run when it should be
    pruned (per epoch for neural loops, per boosting round for GBMs: whatever ``end_epoch`` is)."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    @hookimpl
    def hookforge_after_epoch(self, run: Any, result: Any) -> None:
        value = result.metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, step=result.epoch)
        if self.trial.should_prune():
            run.request_stop("pruned")


def run_plan(cfg: OptunaConfig, session: SearchSession) -> SearchResult:
    stages = cfg.stages or {"search": StageConfig()}
    if session.stage is not None and session.stage not in stages:
        raise UsageError(f"--stage {session.stage}: no such stage{did_you_mean(session.stage, stages)}; "
                         f"stages: {', '.join(stages)}")
    check_objectives(cfg.metrics())
    _check_paths(cfg, stages, session)
    worker = os.environ.get(WORKER_ENV) == "1"
    selected = [session.stage] if session.stage else list(stages)
    result: SearchResult | None = None
    summaries: list[dict[str, Any]] = []
    for name in selected:
        stage_dir = session.study_dir / name
        if session.stage is None and _complete(stage_dir):
            log.info("stage '%s' is already complete (%s); skipping it", name, stage_dir)
            result = _load_result(session, name, stage_dir)
        else:
            stage = stages[name]
            if stage.kind == "refit":
                result = _refit(cfg, session, name, stage, stages)
            else:
                result = _search_stage(cfg, session, name, stage, worker)
        if not worker:
            summaries.append(_stage_line(name, result))
    assert result is not None
    result.extra["stages"] = summaries
    return result


def _stage_line(name: str, result: SearchResult) -> dict[str, Any]:
    """What the end of a search prints for each stage: counts, best value and parameters."""
    counts: dict[str, int] = {}
    for trial in result.trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    best = result.best[0] if result.best else None
    stats = result.extra.get("stats") or {}
    primary = stats.get(result.extra.get("metric") or "")
    return {"stage": name, "trials": counts, "output_dir": str(result.output_dir),
            "best_value": best.value if best else None,
            "best_params": best.params if best else None,
            "refit": primary, "note": result.extra.get("note", "")}


def _check_paths(cfg: OptunaConfig, stages: dict[str, StageConfig], session: SearchSession) -> None:
    for name, stage in stages.items():
        try:
            keys = session.config_keys(stage.overrides)  # resolved once per stage
        except ConfigError as exc:
            raise ConfigError(f"searcher.stages.{name}: {exc}" if cfg.stages else str(exc)) from None
        for path in {**(stage.space or cfg.space), **stage.overrides}:
            try:
                session.check_path(path, keys)
            except ConfigError as exc:
                raise ConfigError(f"searcher.stages.{name}: {exc}" if cfg.stages else str(exc)) from None
        for spec in (stage.space or cfg.space).values():
            for condition in spec.when or {}:
                session.check_path(condition, keys)


def _complete(stage_dir: Path) -> bool:
    summary = stage_dir / "summary.json"
    return summary.exists() and read_json(summary).get("status") == "complete"


# ---------------------------------------------------------------------------------------------
# storages, samplers, pruners
# ---------------------------------------------------------------------------------------------


def storage_url(session: SearchSession) -> str:
    if session.storage:
        return session.storage
    session.study_dir.mkdir(parents=True, exist_ok=True)
    if session.workers > 1:  # SQLite locks under concurrent writers; a journal file does not
        return f"journal://{(session.study_dir / 'journal.log').resolve()}"
    return f"sqlite:///{(session.study_dir / 'study.db').resolve()}"


def make_storage(url: str) -> Any:
    if url.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        from hookforge.fileio import check_writable_parent

        path = Path(url[len("journal://"):])
        check_writable_parent(path, "--storage journal file")
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise UsageError(f"--storage journal file {path}: cannot open it "
                             f"({exc.strerror or exc})") from None
    # a server connection may have gone stale between trials; a SQLite file cannot (and pinging it
    # would add a query to every one of optuna's transactions)
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as exc:  # sqlalchemy raises several types for a bad or unreachable URL
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot open the study storage {redact_text(url)}: {first}") from None


def make_sampler(cfg: OptunaConfig, space: dict[str, ParamSpec], seed: int) -> Any:
    sampler = cfg.sampler  # ``seed``: already derived from sampler.seed or run.seed
    if sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=sampler.n_startup_trials)
    if sampler.name == "grid":
        grid: dict[str, list[Any]] = {}
        for path, spec in space.items():
            if spec.type == "categorical":
                from hookforge_optuna.space import encode_choices

                grid[path] = encode_choices(spec.choices or [])
            elif spec.type == "int":
                grid[path] = list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
            else:
                raise ConfigError(f"searcher.sampler grid: '{path}' is continuous; give it "
                                  f"type categorical (or int) to grid-search it")
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=sampler.n_startup_trials)


def make_pruner(cfg: OptunaConfig) -> Any:
    pruner = cfg.pruner
    if pruner.name == "median" and len(cfg.metrics()) == 1:
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.n_startup_trials,
                                           n_warmup_steps=pruner.n_warmup_steps)
    if pruner.name == "hyperband" and len(cfg.metrics()) == 1:
        return optuna.pruners.HyperbandPruner(min_resource=pruner.min_resource,
                                              reduction_factor=pruner.reduction_factor)
    return optuna.pruners.NopPruner()  # optuna cannot prune multi-objective studies


# ---------------------------------------------------------------------------------------------
# search stages
# ---------------------------------------------------------------------------------------------


def _stage_space(cfg: OptunaConfig, session: SearchSession, name: str,
                 stage: StageConfig) -> dict[str, ParamSpec]:
    space = dict(stage.space or cfg.space)
    if not space:
        raise ConfigError(f"searcher: stage '{name}' has nothing to search (empty space)")
    if stage.narrow_from:
        previous = session.study_dir / stage.narrow_from
        if not _complete(previous):
            raise UsageError(f"stage '{name}' narrows the space around stage '{stage.narrow_from}', "
                             f"which has not finished; run `hookforge search -c CONFIG --stage "
                             f"{stage.narrow_from}` first")
        top = [t["params"] for t in _ranked(read_json(previous / "trials.json"), cfg)[: stage.top_k]]
        space = narrow(space, top, stage.margin)
        atomic_write_json(session.study_dir / name / "space.json",
                          {p: s.model_dump(exclude_none=True) for p, s in space.items()})
    return space


def _ranked(trials: list[dict[str, Any]], cfg: OptunaConfig) -> list[dict[str, Any]]:
    """Complete trials, best first by the first objective."""
    done = [t for t in trials if t["state"] == "complete" and t.get("value") is not None]
    sign = -1 if cfg.directions()[0] == "maximize" else 1

    def first(t: dict[str, Any]) -> float:
        return t["value"][0] if isinstance(t["value"], list) else t["value"]

    return sorted(done, key=lambda t: sign * first(t))


def _search_stage(cfg: OptunaConfig, session: SearchSession, name: str, stage: StageConfig,
                  worker: bool) -> SearchResult:
    stage_dir = session.study_dir / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    space = _stage_space(cfg, session, name, stage)
    url = storage_url(session)
    study = optuna.create_study(
        storage=make_storage(url), study_name=f"{session.study}.{name}", load_if_exists=True,
        pruner=make_pruner(cfg), directions=cfg.directions())
    alone = not worker and session.workers == 1 and session.storage is None
    _fail_orphans(study, alone=alone)
    # Each stage, each worker process and each re-run after a kill draws its own stream: with one
    # seed for all of them, workers proposed the same configurations and stage 1 replayed
    # stage 0. The seed is derived from run.seed, the stage, the worker's index and how many
    # trials the study already holds, so a fresh single-process search stays reproducible.
    base_seed = cfg.sampler.seed if cfg.sampler.seed is not None else session.config.run.seed
    sampler_seed = derive_seed(base_seed, "stage", name, "worker",
                               os.environ.get(WORKER_INDEX_ENV, "0"), "after",
                               len(study.get_trials(deepcopy=False)))
    study.sampler = make_sampler(cfg, space, sampler_seed)
    n_trials = stage.n_trials or cfg.n_trials
    children = _spawn_workers(session, name, url) if session.workers > 1 and not worker else []
    try:  # this process is one of the workers: its start-up is already paid for
        # sharing the study with other processes, count its trials in the storage every time
        shared = worker or session.workers > 1 or session.storage is not None
        _work(study, cfg, session, stage, stage_dir, space, n_trials, shared)
    finally:
        _wait_for(children)
    if worker:
        return SearchResult(study=session.study, trials=[], best=[], output_dir=stage_dir)
    return _write_outputs(study, cfg, session, name, stage_dir, url)


def _fail_orphans(study: optuna.Study, *, alone: bool) -> int:
    """Trials left RUNNING by a process that is gone are marked failed, so the stage runs
    another trial in their place; returns how many. A trial records its owner (host, pid) right
    after it is created: one without an owner was created by a process killed in between. With
    other processes on the study (``alone`` False) such a trial may be a few milliseconds old,
    so it is failed only after ``ORPHAN_GRACE_S``."""
    from datetime import datetime

    host, now, failed = socket.gethostname(), datetime.now(), 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("hookforge")
        if owner is None:
            started = trial.datetime_start
            orphan = alone or (started is not None
                               and (now - started).total_seconds() > ORPHAN_GRACE_S)
        else:
            pid = owner.get("pid")
            orphan = owner.get("host") == host and bool(pid) and not pid_alive(int(pid))
        if orphan:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
            log.warning("trial %d of %s was left running by a stopped process; marked failed",
                        trial.number, study.study_name)
    return failed


def _counted(study: optuna.Study) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def _work(study: optuna.Study, cfg: OptunaConfig, session: SearchSession, stage: StageConfig,
          stage_dir: Path, space: dict[str, ParamSpec], n_trials: int, shared: bool) -> None:
    """Ask, run, tell, until the stage has its trials (counting every worker's when ``shared``;
    alone, the process counts its own: a storage query per trial costs more than a small trial's
    record)."""
    deadline = time.time() + cfg.timeout_s if cfg.timeout_s else None
    base = session.config_keys(stage.overrides)  # `when` sees the stage's config
    metrics = cfg.metrics()
    objective: str | list[str] = metrics[0] if len(metrics) == 1 else metrics
    pruning = not isinstance(study.pruner, optuna.pruners.NopPruner)
    counted = _counted(study)
    progress = SearchProgress(n_trials, metrics[0], cfg.directions()[0], stage=stage_dir.name,
                              done=counted)
    while counted < n_trials and (deadline is None or time.time() < deadline):
        trial = study.ask()
        params = suggest(trial, space, base)
        overrides = {**stage.overrides, **params}
        # each report is a storage write (a transaction in an RDB): only when it can prune
        observers = [PruningObserver(trial, metrics[0])] if pruning else []
        directory = stage_dir / "trials" / f"trial_{trial.number:04d}"
        # one attribute, one storage write (each write is a transaction in an RDB storage)
        trial.set_user_attr("hookforge", {"host": socket.gethostname(), "pid": os.getpid(),
                                          "run_dir": str(directory),
                                          "overrides": json.dumps(overrides, default=str)})
        try:
            result = session.run_trial(overrides, number=trial.number, directory=directory,
                                       metric=objective, plugins=observers)
        except (UsageError, RunInterrupted, KeyboardInterrupt):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if result.state == "complete" and result.value is not None:
            told = _tell(study, trial, values=result.value)
        elif result.state == "pruned":
            told = _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr("error", result.error or "")
            told = _tell(study, trial, state=optuna.trial.TrialState.FAIL)
        progress.update(result)
        if not told:
            break
        if shared:  # a worker killed mid-trial leaves it RUNNING: fail it and run one more
            _fail_orphans(study, alone=False)
            counted = _counted(study)
        else:
            counted += 1


def _tell(study: optuna.Study, trial: optuna.Trial, **outcome: Any) -> bool:
    """Tell optuna a trial's outcome; False when the grid sampler has run out of points.

    GridSampler calls ``study.stop()`` after the last grid point, which raises outside
    ``optimize()`` (documented for ask-and-tell in optuna PR #5153); the outcome is stored first.
    """
    try:
        study.tell(trial, **outcome)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return False
    return True


def _spawn_workers(session: SearchSession, name: str, url: str) -> list[subprocess.Popen[str]]:
    """``--workers N``: N-1 more processes share the study through its storage."""
    from hookforge.config.loader import dump_yaml

    stage_dir = session.study_dir / name
    config_file = stage_dir / "search_config.yaml"
    atomic_write_text(config_file, dump_yaml(session.config.to_dict()))
    command = [sys.executable, "-m", "hookforge", "-q", "search", "-c", str(config_file),
               "--stage", name, "--study", session.study, "--storage", url]
    return [subprocess.Popen(command, env={**os.environ, WORKER_ENV: "1", WORKER_INDEX_ENV: str(i)},
                             stderr=subprocess.PIPE, text=True)
            for i in range(1, session.workers)]


def _wait_for(children: list[subprocess.Popen[str]]) -> None:
    errors = []
    for process in children:
        _, err = process.communicate()
        if process.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {process.returncode}")
    if errors:
        raise UsageError(f"{len(errors)} of {len(children)} worker processes failed: {errors[0]}")


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------


def _trial_results(study: optuna.Study) -> list[TrialResult]:
    from hookforge.record import RunRecord

    results = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs.get("hookforge", {})
        run_dir = Path(attrs["run_dir"]) if "run_dir" in attrs else None
        params = json.loads(attrs.get("overrides", "{}"))
        metrics = trial_metrics(RunRecord(run_dir)) if run_dir and (run_dir / "run.json").exists() else {}
        values = trial.values
        value: float | list[float] | None = None
        if values is not None:
            value = values[0] if len(values) == 1 else list(values)
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else None
        results.append(TrialResult(number=trial.number, params=params,
                                   state=STATES.get(trial.state, str(trial.state)), metrics=metrics,
                                   value=value, run_dir=run_dir, duration_s=duration,
                                   error=trial.user_attrs.get("error")))
    return results


def _write_outputs(study: optuna.Study, cfg: OptunaConfig, session: SearchSession, name: str,
                   stage_dir: Path, url: str) -> SearchResult:
    trials = _trial_results(study)
    write_trials(trials, stage_dir)
    complete = [t for t in trials if t.state == "complete"]
    note = ""
    if len(cfg.metrics()) == 1:
        # the lowest-numbered of tied trials, as every compare path breaks ties
        tied, note = best_trials(trials, cfg.directions()[0])
        best_numbers = [t.number for t in tied[:1]]
        if note:
            log.warning("stage '%s': %s", name, note)
    else:
        best_numbers = [t.number for t in study.best_trials] if complete else []
    best = [t for t in trials if t.number in best_numbers]
    if best:
        write_best_config(session, best[0], stage_dir)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    draw_plots(study, cfg.metrics(), stage_dir)
    # summary.json marks the stage complete: written last, so a search stopped while writing
    # the outputs redoes them (its trials are in the storage) instead of skipping the stage
    atomic_write_json(stage_dir / "summary.json", {
        "status": "complete", "study": session.study, "stage": name,
        "optuna_study": study.study_name, "storage": redact_text(url),
        "metrics": cfg.metrics(), "directions": cfg.directions(), "trials": counts,
        "best": [{"number": t.number, "value": t.value, "params": t.params,
                  "run_dir": str(t.run_dir) if t.run_dir else None} for t in best],
        "note": note,
    })
    return SearchResult(study=session.study, trials=trials, best=best, output_dir=stage_dir,
                        extra={"metric": cfg.metrics()[0], "metrics": cfg.metrics(), "stage": name,
                               "note": note})


def _load_result(session: SearchSession, name: str, stage_dir: Path) -> SearchResult:
    trials = [TrialResult(**{**t, "run_dir": Path(t["run_dir"]) if t.get("run_dir") else None})
              for t in read_json(stage_dir / "trials.json")]
    summary = read_json(stage_dir / "summary.json")
    best_numbers = {b.get("number") for b in summary.get("best", [])}
    return SearchResult(study=session.study, trials=trials,
                        best=[t for t in trials if t.number in best_numbers], output_dir=stage_dir,
                        extra={"metric": (summary.get("metrics") or [None])[0],
                               "metrics": summary.get("metrics") or [], "stage": name})


# ---------------------------------------------------------------------------------------------
# refit: the best config, several seeds, mean, std and a t interval
# ---------------------------------------------------------------------------------------------


# metrics that live in [0, 1]: their interval must too
UNIT_INTERVAL = ("accuracy", "precision", "recall", "f1", "fbeta", "auroc", "auc", "average_precision",
                 "balanced_accuracy", "jaccard", "success_rate", "exact_match", "error_rate")


def _bounded(key: str, values: Any) -> bool:
    name = key.rsplit("/", 1)[-1]
    return any(name.startswith(prefix) for prefix in UNIT_INTERVAL) and \
        bool(((values >= 0) & (values <= 1)).all())


def seed_interval(values: Any, confidence: float, *, bounded: bool) -> dict[str, Any]:
    """Mean, std and a ``confidence`` interval over seeds: Student's t. For metrics in [0, 1]
    the t interval is built on the logit scale around the mean (delta method: the standard error
    divided by m(1 - m)) and mapped back, so it stays inside [0, 1] however few seeds there are
    and always holds the mean; a 2-seed plain t interval printed 0.71..1.245 for an accuracy."""
    from scipy import stats

    n = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    if n < 2 or std == 0:
        return {"mean": mean, "std": std, "ci_low": mean, "ci_high": mean, "n": n,
                "method": "single seed" if n < 2 else "t"}
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    if not bounded:
        return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n,
                "method": "t"}
    m = min(max(mean, 1e-6), 1 - 1e-6)
    centre, spread = math.log(m / (1 - m)), half / (m * (1 - m))

    def expit(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    return {"mean": mean, "std": std, "ci_low": expit(centre - spread),
            "ci_high": expit(centre + spread), "n": n, "method": "t on the logit scale"}


def _refit(cfg: OptunaConfig, session: SearchSession, name: str, stage: StageConfig,
           stages: dict[str, StageConfig]) -> SearchResult:
    import numpy as np

    sources = stage.sources() or [list(stages)[list(stages).index(name) - 1]]
    candidates = []
    for source in sources:
        source_dir = session.study_dir / source
        if not _complete(source_dir):
            raise UsageError(f"stage '{name}' refits the best config of stage '{source}', which has "
                             f"not finished; run `hookforge search -c CONFIG --stage {source}` first")
        candidates += [{**best, "stage": source}
                       for best in read_json(source_dir / "summary.json").get("best", [])[:1]]
    if not candidates:
        raise UsageError(f"stage{'s' if len(sources) > 1 else ''} {', '.join(sources)} "
                         f"{'have' if len(sources) > 1 else 'has'} no complete trial to refit")
    # several stages (e.g. one per model family): the best of their best trials
    winner = _ranked([{**c, "state": "complete"} for c in candidates], cfg)[0]
    source, best_params = winner["stage"], winner["params"]
    stage_dir = session.study_dir / name
    metrics = cfg.metrics()
    objective: str | list[str] = metrics[0] if len(metrics) == 1 else metrics
    runs = []
    for number, seed in enumerate(stage.seeds):
        overrides = {**best_params, **stage.overrides, "run.seed": seed}
        runs.append(session.run_trial(overrides, number=number, metric=objective, score_test=True,
                                      directory=stage_dir / "runs" / f"seed_{seed}"))
    write_trials(runs, stage_dir)
    keys = sorted({k for r in runs for k in r.metrics
                   if k.split("/")[0] in ("val", "test") and not k.endswith("n_samples")})
    summary_stats: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = np.array([r.metrics[key] for r in runs if key in r.metrics], dtype=float)
        summary_stats[key] = seed_interval(values, stage.confidence, bounded=_bounded(key, values))
    best_overall = TrialResult(number=0, params={**best_params, **stage.overrides}, state="complete")
    write_best_config(session, best_overall, stage_dir)
    atomic_write_json(stage_dir / "summary.json", {
        "status": "complete", "kind": "refit", "study": session.study, "stage": name,
        "from_stage": source, "params": best_params, "seeds": stage.seeds,
        "confidence": stage.confidence, "metrics": metrics,
        "runs": [{"seed": s, "state": r.state, "run_dir": str(r.run_dir), "value": r.value}
                 for s, r in zip(stage.seeds, runs, strict=True)],
        "stats": summary_stats,
    })
    primary = summary_stats.get(metrics[0], {})
    if primary:
        log.info("refit %s over %d seeds: %.4f ± %.4f (%d%% CI %.4f..%.4f, %s)", metrics[0],
                 len(runs), primary["mean"], primary["std"], int(stage.confidence * 100),
                 primary["ci_low"], primary["ci_high"], primary["method"])
    return SearchResult(study=session.study, trials=runs, best=[], output_dir=stage_dir,
                        extra={"metric": metrics[0], "stage": name, "stats": summary_stats})

