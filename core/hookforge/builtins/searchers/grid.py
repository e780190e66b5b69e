"""The ``grid`` searcher: every combination of the listed values, one run each, then a summary.

``hookforge search -c FILE model.latent=none,linear,vq`` sweeps the comma-separated values
(Hydra's multirun, without Hydra). A finished trial directory is reused when the same sweep runs
again, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import itertools
import logging
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
