"""hookforge: train, tune, track and evaluate models through plugins.

The public API is imported lazily so that ``hookforge --help`` and ``hookforge plugins`` stay fast:

>>> import hookforge
>>> result = hookforge.train("configs/quickstart.yaml", ["run.seed=7"])
>>> run = hookforge.Run.open(result.run_dir); run.evaluate(["test"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookforge.markers import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "Run": "hookforge.run", "RunResult": "hookforge.run", "train": "hookforge.run",
    "load_config": "hookforge.config", "ResolvedConfig": "hookforge.config",
    "Component": "hookforge.components", "ComponentConfig": "hookforge.components",
    "DataSource": "hookforge.components", "Model": "hookforge.components",
    "Loop": "hookforge.components", "Tracker": "hookforge.components",
    "Evaluator": "hookforge.components", "Searcher": "hookforge.components",
    "Dataset": "hookforge.types", "DatasetInfo": "hookforge.types", "Split": "hookforge.types",
    "Predictions": "hookforge.types", "EpochResult": "hookforge.types",
    "StepResult": "hookforge.types", "FitResult": "hookforge.types",
    "CheckpointInfo": "hookforge.types", "TrialResult": "hookforge.types",
    "SearchResult": "hookforge.types", "SearchSession": "hookforge.search",
    "tune": "hookforge.search", "derive_seed": "hookforge.seeds", "seeded_split": "hookforge.splits",
    "SplitConfig": "hookforge.splits", "Sub": "hookforge.subcomponents",
    "sub_field": "hookforge.subcomponents", "SubSpec": "hookforge.subcomponents",
    "RunRecord": "hookforge.record", "UsageError": "hookforge.errors",
    "ConfigError": "hookforge.errors", "DataError": "hookforge.errors",
    "PluginError": "hookforge.errors", "CheckpointError": "hookforge.errors",
    "HookforgeError": "hookforge.errors", "pipeline": "hookforge.pipelines",
    "PipelineResult": "hookforge.pipelines", "submit": "hookforge.cluster",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hookforge' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from hookforge.cluster import submit  # noqa: F401
    from hookforge.components import (  # noqa: F401
        Component,
        ComponentConfig,
        DataSource,
        Evaluator,
        Loop,
        Model,
        Searcher,
        Tracker,
    )
    from hookforge.config import ResolvedConfig, load_config  # noqa: F401
    from hookforge.errors import (  # noqa: F401
        CheckpointError,
        ConfigError,
        DataError,
        HookforgeError,
        PluginError,
        UsageError,
    )
    from hookforge.pipelines import PipelineResult, pipeline  # noqa: F401
    from hookforge.record import RunRecord  # noqa: F401
    from hookforge.run import Run, RunResult, train  # noqa: F401
    from hookforge.search import SearchSession, tune  # noqa: F401
    from hookforge.seeds import derive_seed  # noqa: F401
    from hookforge.splits import SplitConfig, seeded_split  # noqa: F401
    from hookforge.subcomponents import Sub, SubSpec, sub_field  # noqa: F401
    from hookforge.types import (  # noqa: F401
        CheckpointInfo,
        Dataset,
        DatasetInfo,
        EpochResult,
        FitResult,
        Predictions,
        SearchResult,
        Split,
        StepResult,
        TrialResult,
    )
