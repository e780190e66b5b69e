"""``hookforge compare``: rank runs by a metric, give proportions a Bayesian interval, mark the
Pareto front over several metrics, and name a champion only if it clears a threshold.

The interval for a proportion (accuracy and its kin) is the equal-tailed Jeffreys interval: the
posterior Beta(k + 1/2, n - k + 1/2) under the Jeffreys prior Beta(1/2, 1/2), with k successes in
n evaluated samples (Brown, Cai & DasGupta 2001 recommend it over the Wald interval for small n).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookforge.errors import UsageError, did_you_mean
from hookforge.fileio import read_json
from hookforge.record import RunRecord
from hookforge.search import default_direction

# Metrics that are a fraction of evaluated samples (k of n), so a Beta posterior fits them.
PROPORTIONS = {"accuracy", "precision_micro", "recall_micro", "f1_micro", "error_rate",
               "success_rate"}


def jeffreys_interval(successes: float, n: int, level: float = 0.8) -> tuple[float, float]:
    """Equal-tailed Jeffreys interval for a binomial proportion; the bounds are 0 and 1 when
    every or no trial succeeded (Brown, Cai & DasGupta's convention)."""
    from scipy.stats import beta

    if n <= 0:
        raise ValueError("n must be positive")
    k = min(max(successes, 0.0), float(n))
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k + 0.5, n - k + 0.5))
    high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 0.5, n - k + 0.5))
    return low, high


@dataclass
class Objective:
    key: str  # split/name
    direction: str  # maximize | minimize

    @classmethod
    def parse(cls, text: str) -> Objective:
        key, _, direction = text.partition(":")
        if "/" not in key:
            key = f"val/{key}"
        if direction in ("", None):
            direction = default_direction(key)
        elif direction in ("max", "maximize"):
            direction = "maximize"
        elif direction in ("min", "minimize"):
            direction = "minimize"
        else:
            raise UsageError(f"--metric {text}: direction must be max or min, got '{direction}'")
        return cls(key, direction)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


@dataclass
class RunRow:
    run_dir: Path | str  # a run directory, or a tracker's run id when there is none
    name: str
    status: str
    values: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    rank: int | None = None
    pareto: bool = False
    tracker_run_id: str | None = None


@dataclass
class Comparison:
    objectives: list[Objective]
    rows: list[RunRow]
    champion: RunRow | None
    threshold: float | None
    level: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": [{"key": o.key, "direction": o.direction} for o in self.objectives],
            "level": self.level, "threshold": self.threshold, "message": self.message,
            "champion": str(self.champion.run_dir) if self.champion else None,
            "runs": [{"run_dir": str(r.run_dir), "name": r.name, "status": r.status,
                      "rank": r.rank, "pareto": r.pareto, "values": r.values,
                      "intervals": {k: list(v) if v else None for k, v in r.intervals.items()}}
                     for r in self.rows],
        }


def load_values(record: RunRecord, key: str) -> tuple[float | None, int | None]:
    """The value of ``split/name`` from evaluation.json and its sample count: the split's, or
    for a metric of a group (``split/group/name``, e.g. one task family) the group's
    ``group/n_samples`` where the evaluator recorded one."""
    split, _, name = key.partition("/")
    values = record.evaluation().get(split, {})
    value = values.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, None
    group = name.rpartition("/")[0]
    n = values.get(f"{group}/n_samples", values.get("n_samples")) if group else values.get("n_samples")
    return float(value), int(n) if isinstance(n, (int, float)) else None


def default_metrics(records: list[RunRecord]) -> list[str]:
    """What to compare when no --metric is given: val accuracy or r2; for generated answers
    scored per task family, each family's test success rate (the Pareto front over families)."""
    for record in records:
        task = (record.read_json("dataset.json") or {}).get("task")
        if task == "regression":
            return ["val/r2"]
        if task in ("classification", "multilabel"):
            return ["val/accuracy"]
        if task == "generation":
            evaluation = record.evaluation()
            split = "test" if "test" in evaluation else "val"
            families = sorted(k for k in evaluation.get(split, {}) if k.endswith("/success_rate"))
            return [f"{split}/{k}" for k in families] or [f"{split}/success_rate"]
    raise UsageError("no --metric given and the runs' task is unknown; pass --metric split/name")


def compare(run_dirs: list[str | Path], metrics: list[str] | None = None,
            threshold: float | None = None, level: float = 0.8) -> Comparison:
    """Compare recorded runs; the first metric ranks them and decides the champion."""
    if not run_dirs:
        raise UsageError("compare needs at least one RUN_DIR (or --tracker and --experiment)")
    _check_level(level)
    records = [RunRecord.open(d) for d in run_dirs]
    objectives = [Objective.parse(m) for m in (metrics or default_metrics(records))]
    rows: list[RunRow] = []
    for record in records:
        info = record.info()
        row = RunRow(record.path, info.get("name", record.path.name), info.get("status", "?"), {})
        for objective in objectives:
            value, n = load_values(record, objective.key)
            _add_value(row, objective, value, n, level)
        rows.append(row)
    known = sorted({f"{s}/{k}" for rec in records for s, v in rec.evaluation().items()
                    for k in v if k != "confusion_matrix"})
    return rank(rows, objectives, threshold, level, known)


def compare_tracker(tracker_name: str, experiment: str, metrics: list[str] | None = None,
                    threshold: float | None = None, level: float = 0.8,
                    register_as: str | None = None) -> Comparison:
    """Compare the finished runs of a tracker's experiment (e.g. MLflow's search_runs); when the
    best clears ``threshold``, register its model as the champion in the tracker's registry."""
    from hookforge import registry
    from hookforge.errors import PluginError

    _check_level(level)
    if not metrics:
        raise UsageError("--tracker needs --metric (e.g. --metric val/f1_macro)")
    try:
        cls = registry.load("tracker", tracker_name)
    except PluginError as exc:
        raise UsageError(f"--tracker {tracker_name}: {exc}") from None
    tracker = cls()
    objectives = [Objective.parse(m) for m in metrics]
    rows: dict[str, RunRow] = {}
    for objective in objectives:
        for found in tracker.query_runs(experiment, objective.key):
            row = rows.setdefault(found["run_id"], RunRow(found.get("run_dir") or found["run_id"],
                                                          found.get("name") or found["run_id"],
                                                          "finished", {}))
            row.tracker_run_id = found["run_id"]
            n = found.get("n_samples")
            _add_value(row, objective, found.get("value"), int(n) if n else None, level)
    if not rows:
        raise UsageError(f"tracker '{tracker_name}' has no finished runs in experiment '{experiment}'")
    result = rank(list(rows.values()), objectives, threshold, level, [o.key for o in objectives])
    if result.champion is not None and threshold is not None:
        name = register_as or experiment
        version = tracker.register_champion(result.champion.tracker_run_id, name)
        result.message += f"; registered as version {version} of model '{name}' (alias champion)"
    elif result.champion is not None:
        result.message += " (give --threshold to register it as the champion)"
    return result


def promote(result: Comparison, target: str | Path) -> str:
    """Copy the champion's run record (its best checkpoint only) to ``target``, replacing a
    previous champion there, with champion.json saying where it came from and its test metrics.
    The champion is evaluated on test here, once, if its record has no test evaluation yet."""
    from datetime import datetime

    from hookforge.fileio import atomic_write_dir, atomic_write_json

    if result.threshold is None:
        raise UsageError("--promote needs --threshold (the deployment bar the champion must clear)")
    target = Path(target)
    check_promote_target(target)
    if result.champion is None:
        return f"nothing promoted to {target}"
    source = RunRecord.open(result.champion.run_dir)
    if target.resolve() == source.path.resolve():
        raise UsageError(f"--promote {target} is the champion's own run directory; promote it "
                         f"to another directory")
    test = source.evaluation().get("test")
    if test is None:
        from hookforge.run import Run

        test = Run.open(source.path).evaluate(["test"])["test"]
    primary = result.objectives[0]

    def fill(tmp: Path) -> None:
        source.copy_to(tmp, keep=lambda item: item.name != "trackers")  # their runs are the source's
        atomic_write_json(tmp / "champion.json", {
            "written_by": CHAMPION_MARK, "source": str(source.path), "metric": primary.key,
            "value": result.champion.values[primary.key], "threshold": result.threshold,
            "test": {k: v for k, v in test.items() if k != "confusion_matrix"},
            "promoted": datetime.now().astimezone().isoformat(timespec="seconds")})

    atomic_write_dir(target, fill)
    scores = ", ".join(f"{k}={v:.4f}" for k, v in test.items()
                       if isinstance(v, float) and k in ("accuracy", "f1_macro", "fbeta_macro",
                                                         "auroc_macro", "rmse", "r2"))
    return f"promoted {source.path} to {target} (test: {scores or 'no scalar metrics'})"


CHAMPION_MARK = "hookforge compare --promote"


def check_promote_target(target: Path) -> None:
    """``--promote DIR`` replaces only what it wrote itself: nothing, an empty directory, or a
    champion directory holding the champion.json of an earlier promotion. Anything else (another
    run's record, a user's files, a file) is left untouched and is a UsageError."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise UsageError(f"--promote {target}: it exists and is not a directory; nothing was "
                         f"touched")
    if not any(target.iterdir()):
        return
    marker = target / "champion.json"
    try:
        mark = read_json(marker) if marker.is_file() else {}
    except (OSError, ValueError):
        mark = {}
    # champion.json files from before the mark was written have `source` and `promoted`
    ours = isinstance(mark, dict) and (mark.get("written_by") == CHAMPION_MARK
                                       or {"source", "promoted", "threshold"} <= set(mark))
    if not ours:
        what = "a run directory" if (target / "run.json").is_file() else "files hookforge did not write"
        raise UsageError(f"--promote {target}: it holds {what} (no champion.json from an earlier "
                         f"promotion); choose an empty or new directory; nothing was touched")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise UsageError(f"--interval must be between 0 and 1, got {level}")


def _add_value(row: RunRow, objective: Objective, value: float | None, n: int | None,
               level: float) -> None:
    row.values[objective.key] = value
    name = objective.key.rpartition("/")[2]
    if value is not None and n and name in PROPORTIONS and 0 <= value <= 1:
        row.intervals[objective.key] = jeffreys_interval(round(value * n), n, level)
    else:
        row.intervals[objective.key] = None


def rank(rows: list[RunRow], objectives: list[Objective], threshold: float | None, level: float,
         known: list[str]) -> Comparison:
    """Rank by the first objective, mark the Pareto front, decide the champion."""
    primary = objectives[0]
    scored = [r for r in rows if all(r.values[o.key] is not None for o in objectives)]
    if not scored:
        raise UsageError(f"no run has the metric '{primary.key}'{did_you_mean(primary.key, known)}"
                         f"; the runs have: {', '.join(known[:20]) or 'no evaluation'}")
    sign = 1 if primary.direction == "maximize" else -1
    # ties are broken by name, then run directory (or tracker run id): the same rule whatever
    # order the runs came in (the command line, a tracker's search)
    scored.sort(key=lambda r: (-sign * r.values[primary.key], str(r.name),  # type: ignore[operator]
                               str(r.run_dir)))
    for i, row in enumerate(scored, 1):
        row.rank = i
        row.pareto = not any(_dominates(other, row, objectives) for other in scored if other is not row)
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0))
    best = scored[0]
    value = best.values[primary.key]
    assert value is not None
    tied = [r for r in scored[1:] if r.values[primary.key] == value]
    if threshold is None:
        champion, message = best, f"champion: {best.name} ({primary.key} = {value:.4g})"
    elif primary.better(value, threshold) or value == threshold:
        champion = best
        message = (f"champion: {best.name} ({primary.key} = {value:.4g} clears the threshold "
                   f"{threshold:g})")
    else:
        champion = None
        message = (f"no champion: the best run {best.name} has {primary.key} = {value:.4g}, which "
                   f"does not clear the threshold {threshold:g}")
    if tied and len(tied) + 1 == len(scored) and len(scored) > 1:
        message += f"; every run has {primary.key} = {value:.4g}: the ranking tells nothing apart " \
                   f"(ties broken by run name)"
    elif tied:
        message += (f"; tied with {', '.join(r.name for r in tied)} at {value:.4g} "
                    f"(ties broken by run name)")
    return Comparison(objectives, rows, champion, threshold, level, message)


def _dominates(a: RunRow, b: RunRow, objectives: list[Objective]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    at_least = all(not o.better(b.values[o.key], a.values[o.key]) for o in objectives)  # type: ignore[arg-type]
    better = any(o.better(a.values[o.key], b.values[o.key]) for o in objectives)  # type: ignore[arg-type]
    return at_least and better
