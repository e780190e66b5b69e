"""The ``grid`` searcher: every combination of the listed values, one run each, then a summary.

``hookforge search -c FILE model.latent=none,linear,vq`` sweeps the comma-separated values
(Hydra's multirun, without Hydra). A finished trial directory is reused when the same sweep runs
again, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, Searcher
from hookforge.errors import ConfigError
from hookforge.types import SearchResult

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.search import SearchSession

log = logging.getLogger("hookforge")


class GridSearcher(Searcher):
    """Exhaustive sweep over ``params`` (and the sweeps given on the command line)."""

    class Config(ComponentConfig):
        params: dict[str, list[Any]] = Field(default_factory=dict,
                                             description="dotted config path -> values to try")
        metric: str | None = Field(None, description="objective, e.g. val/accuracy (ranks the trials)")
        direction: Literal["maximize", "minimize"] | None = Field(
            None, description="default: minimize losses and errors, maximize the rest")
        compare: list[str] | None = Field(None, description=(
            "metrics of the comparison table and figure (comparison.md, comparison.png); "
            "default: the metric, then the trials' other val/ metrics, six at most"))

    def search(self, session: SearchSession) -> SearchResult:
        from hookforge.search import (
            SearchProgress,
            best_trials,
            check_objectives,
            default_direction,
            write_best_config,
            write_trials,
        )

        axes = {**self.config.params, **session.sweep}
        if not axes:
            raise ConfigError("grid search: nothing to sweep; set searcher.params or pass "
                              "KEY=a,b,c on the command line")
        for path, values in axes.items():
            session.check_path(path)
            if not values:
                raise ConfigError(f"grid search: '{path}' has no values to try")
        keys = list(axes)
        combos = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]
        # every point is validated before the first one trains: a bad value in the last point
        # must not surface after an hour of sweeping, nor leave a failed trial behind
        for number, overrides in enumerate(combos):
            try:
                session.trial_config(overrides, f"{session.study}-trial{number:04d}")
            except ConfigError as exc:
                point = ", ".join(f"{k}={v}" for k, v in overrides.items())
                raise ConfigError(f"grid point {number} ({point}): {exc}") from None
        metric = self.config.metric
        if metric:
            check_objectives([metric])
        else:
            log.warning("grid search without searcher.metric: every point runs, but no best "
                        "config is chosen (set searcher.metric=val/NAME to rank them)")
        directory = session.study_dir
        progress = SearchProgress(len(combos), metric,
                                  (self.config.direction or default_direction(metric)) if metric else None)
        trials = []
        for number, overrides in enumerate(combos):
            trials.append(session.run_trial(overrides, number=number, metric=metric,
                                            directory=directory / "trials" / f"trial_{number:04d}"))
            progress.update(trials[-1])
        write_trials(trials, directory)
        write_comparison(trials, keys, self.compared(trials, metric), directory, session.study,
                         figure=session.config.run.figures is not False)
        best: list[Any] = []
        note = ""
        if metric:
            tied, note = best_trials(trials, self.config.direction or default_direction(metric))
            best = tied[:1]
            if best:
                write_best_config(session, best[0], directory)
            if note:
                log.warning("grid search: %s", note)
        return SearchResult(study=session.study, trials=trials, best=best, output_dir=directory,
                            extra={"metric": metric, "note": note})

    def compared(self, trials: list[Any], metric: str | None) -> list[str]:
        if self.config.compare:
            return list(self.config.compare)
        names = sorted({k for t in trials for k in t.metrics
                        if k.startswith("val/") and k != metric and not k.endswith("n_samples")})
        return ([metric] if metric else []) + names[:6 - bool(metric)]


def write_comparison(trials: list[Any], axes: list[str], metrics: list[str], directory: Path,
                     study: str, figure: bool = True) -> None:
    """comparison.md (one row per point: the swept values and ``metrics``) and comparison.png
    (a panel per metric, a bar per point): how the points of a sweep compare at a glance."""
    from hookforge.fileio import atomic_write_text

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))

    header = ["#", *axes, "state", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in trials:
        row = [str(t.number), *[cell(t.params.get(a)) for a in axes], t.state,
               *[cell(t.metrics.get(m)) for m in metrics]]
        lines.append("| " + " | ".join(row) + " |")
    atomic_write_text(directory / "comparison.md", f"# {study}\n\n" + "\n".join(lines) + "\n")
    if not figure or not metrics:
        return
    try:
        _comparison_figure(trials, axes, metrics, directory / "comparison.png", study)
    except Exception as exc:  # the table is written; a figure never fails a sweep
        log.warning("could not draw comparison.png: %s", exc)


def _comparison_figure(trials: list[Any], axes: list[str], metrics: list[str], path: Path,
                       study: str) -> None:
    from hookforge.figures import new_figure, save_figure

    labels = [", ".join(str(t.params.get(a)) for a in axes) for t in trials]
    fig = new_figure(3.2 * len(metrics), 3.6)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        values = [t.metrics.get(metric, float("nan")) for t in trials]
        ax.bar(range(len(trials)), values, color="tab:blue")
        ax.set_xticks(range(len(trials)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{study}: {', '.join(axes)}")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.3, top=0.82, wspace=0.4)
    save_figure(fig, path)
