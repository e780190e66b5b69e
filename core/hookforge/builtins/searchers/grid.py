"""The ``grid`` searcher: every combination of the listed values, one run each, then a summary.

``hookforge search -c FILE model.latent=none,linear,vq`` sweeps the comma-separated values
(Hydra's multirun, without Hydra). A finished trial directory is reused when the same sweep runs
again, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, Searcher
from hookforge.errors import ConfigError
from hookforge.types import SearchResult

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.search import SearchSession


class GridSearcher(Searcher):
    """Exhaustive sweep over ``params`` (and the sweeps given on the command line)."""

    class Config(ComponentConfig):
        params: dict[str, list[Any]] = Field(default_factory=dict,
                                             description="dotted config path -> values to try")
        metric: str | None = Field(None, description="objective, e.g. val/accuracy (ranks the trials)")
        direction: Literal["maximize", "minimize"] | None = Field(
            None, description="default: minimize losses and errors, maximize the rest")

    def search(self, session: SearchSession) -> SearchResult:
        from hookforge.search import default_direction, write_best_config, write_trials

        axes = {**self.config.params, **session.sweep}
        if not axes:
            raise ConfigError("grid search: nothing to sweep; set searcher.params or pass "
                              "KEY=a,b,c on the command line")
        for path, values in axes.items():
            session.check_path(path)
            if not values:
                raise ConfigError(f"grid search: '{path}' has no values to try")
        keys = list(axes)
        directory = session.study_dir
        trials = []
        for number, combo in enumerate(itertools.product(*(axes[k] for k in keys))):
            trial = session.run_trial(dict(zip(keys, combo, strict=True)), number=number,
                                      directory=directory / "trials" / f"trial_{number:04d}",
                                      metric=self.config.metric)
            trials.append(trial)
        write_trials(trials, directory)
        best = []
        if self.config.metric:
            direction = self.config.direction or default_direction(self.config.metric)
            done = [t for t in trials if t.state == "complete" and isinstance(t.value, float)]
            if done:
                pick = max if direction == "maximize" else min
                best = [pick(done, key=lambda t: t.value)]
                write_best_config(session, best[0], directory)
        return SearchResult(study=session.study, trials=trials, best=best, output_dir=directory,
                            extra={"metric": self.config.metric})
