"""The ``optuna`` searcher: configuration (this module stays light; the work is in
:mod:`hookforge_optuna.study`).

```yaml
searcher:
  name: optuna
  metric: val/accuracy              # or a list, for a multi-objective (Pareto) search
  sampler: {name: tpe}              # tpe | random | grid | cmaes, seeded by run.seed
  pruner: {name: median}            # none | median | hyperband, fed by per-epoch metrics
  n_trials: 20
  space: {loop.optimizer.lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}}
  stages:                           # optional multi-stage plan, run in order
    sanity: {n_trials: 2, overrides: {loop.epochs: 1}}
    coarse: {n_trials: 20}
    fine:   {n_trials: 10, narrow_from: coarse, top_k: 5}
    refit:  {kind: refit, from_stage: fine, seeds: [42, 123, 456, 789, 2023]}
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig, Searcher
from hookforge_optuna.space import ParamSpec

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.search import SearchSession
    from hookforge.types import SearchResult


class SamplerConfig(ComponentConfig):
    name: Literal["tpe", "random", "grid", "cmaes"] = Field("tpe", description="optuna sampler")
    seed: int | None = Field(None, description="default: run.seed")
    n_startup_trials: int = Field(10, ge=0, description="random trials before TPE models the space")


class PrunerConfig(ComponentConfig):
    name: Literal["none", "median", "hyperband"] = Field("none", description="optuna pruner")
    n_startup_trials: int = Field(5, ge=0, description="median: trials before pruning starts")
    n_warmup_steps: int = Field(0, ge=0, description="median: epochs before a trial can be pruned")
    min_resource: int = Field(1, ge=1, description="hyperband: minimum epochs")
    reduction_factor: int = Field(3, ge=2, description="hyperband: reduction factor")


class StageConfig(ComponentConfig):
    kind: Literal["search", "refit"] = Field("search", description="search trials, or refit the "
                                                                   "best config with several seeds")
    n_trials: int | None = Field(None, ge=1, description="default: searcher.n_trials")
    space: dict[str, ParamSpec] | None = Field(None, description="default: searcher.space")
    overrides: dict[str, Any] = Field(default_factory=dict, description="config changes for every "
                                                                        "trial of the stage")
    narrow_from: str | None = Field(None, description="shrink the space around the top trials of "
                                                      "this earlier stage (whose space and overrides "
                                                      "it inherits)")
    top_k: int = Field(5, ge=1, description="how many top trials narrow the space")
    margin: float = Field(0.1, ge=0, le=1, description="fraction of the old range kept around them")
    from_stage: str | list[str] | None = Field(
        None, description="refit: the stage whose best config is refit (several: the best of them)")
    seeds: list[int] = Field(default_factory=lambda: [42, 123, 456, 789, 2023],
                             description="refit: one run per seed")
    confidence: float = Field(0.95, gt=0, lt=1, description="refit: level of the t interval")

    def sources(self) -> list[str]:
        """``from_stage`` as a list (empty when unset)."""
        if self.from_stage is None:
            return []
        return [self.from_stage] if isinstance(self.from_stage, str) else list(self.from_stage)


class OptunaConfig(ComponentConfig):
    metric: str | list[str] = Field(..., description="objective(s), e.g. val/accuracy")
    direction: str | list[str] | None = Field(None, description="maximize/minimize (per metric); "
                                              "default: minimize losses and errors")
    n_trials: int = Field(20, ge=1, description="trials per search stage")
    timeout_s: float | None = Field(None, gt=0, description="stop asking for trials after this long")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: dict[str, ParamSpec] = Field(default_factory=dict, description="dotted path -> distribution")
    stages: dict[str, StageConfig] = Field(default_factory=dict, description="named stages, in order")

    @model_validator(mode="after")
    def _stages_refer_backwards(self) -> OptunaConfig:
        names = list(self.stages)
        for i, (name, stage) in enumerate(self.stages.items()):
            for ref in (stage.narrow_from, *stage.sources()):
                if ref is not None and ref not in names[:i]:
                    raise ValueError(f"stage '{name}' refers to '{ref}', which is not an earlier stage "
                                     f"(stages: {', '.join(names)})")
            if stage.kind == "refit" and stage.from_stage is None:
                if i == 0:
                    raise ValueError(f"refit stage '{name}' needs from_stage (an earlier stage)")
        metrics = [self.metric] if isinstance(self.metric, str) else self.metric
        if isinstance(self.direction, list) and len(self.direction) != len(metrics):
            raise ValueError("direction needs one entry per metric")
        return self

    @model_validator(mode="after")
    def _narrowing_stages_inherit(self) -> OptunaConfig:
        """A stage that narrows an earlier one continues that search: without a space of its own
        it searches the earlier stage's space, and it starts from the earlier stage's overrides
        (``{model.name: xgboost}`` stays xgboost), its own overrides applied on top."""
        for name, stage in self.stages.items():  # in order, so chains resolve
            earlier = self.stages.get(stage.narrow_from or "")
            if earlier is None:
                continue
            self.stages[name] = stage.model_copy(update={
                "space": stage.space or earlier.space,
                "overrides": {**earlier.overrides, **stage.overrides}})
        return self

    def metrics(self) -> list[str]:
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    def directions(self) -> list[str]:
        from hookforge.search import default_direction

        given = self.direction
        if given is None:
            return [default_direction(m) for m in self.metrics()]
        return [given] * len(self.metrics()) if isinstance(given, str) else list(given)


class OptunaSearcher(Searcher):
    """Optuna studies: TPE/random/grid/CMA-ES, median/hyperband pruning, multi-stage plans,
    parallel workers and shared storages (SQLite, JournalFile, PostgreSQL...)."""

    Config = OptunaConfig

    def search(self, session: SearchSession) -> SearchResult:
        from hookforge_optuna.study import run_plan

        return run_plan(self.config, session)
