"""Base classes for the six kinds of component.

A component is a class with a pydantic ``Config`` (typed fields, defaults, ``extra="forbid"``) and
a few plain methods. Each base class implements the hooks of its kind by calling those methods, so a
plugin author writes ``load()``/``fit()``/``evaluate()`` and never touches pluggy unless they want
to; any other hook can be implemented on the same class with ``@hookimpl``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from hookforge.markers import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.search import SearchSession
    from hookforge.types import (
        CheckpointInfo,
        Dataset,
        DatasetInfo,
        EpochResult,
        FitResult,
        Predictions,
        SearchResult,
    )

log = logging.getLogger("hookforge")


class ComponentConfig(BaseModel):
    """Base of every component ``Config``: unknown keys are errors, floats must be finite, values
    are validated on assignment too."""

    # allow_inf_nan=False: an infinite or NaN float option (a temperature, a learning rate) is
    # refused where it is given, not found as a NaN loss an epoch later
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _default_part_names(cls, data: Any) -> Any:
        """``model.encoder.hidden=[64]`` alone configures the default encoder: a sub-component
        given without a name is the field's default part."""
        if not isinstance(data, dict):
            return data
        from hookforge.subcomponents import sub_kind_of

        for name, field in cls.model_fields.items():
            value = data.get(name)
            if isinstance(value, dict) and "name" not in value and sub_kind_of(field):
                default = field.get_default(call_default_factory=True)
                if isinstance(default, dict) and "name" in default:
                    data = {**data, name: {"name": default["name"], **value}}
        return data


class Component:
    """Common base: holds the validated config. ``plugin_name`` is the entry-point name."""

    kind: ClassVar[str] = ""
    plugin_name: ClassVar[str] = ""

    class Config(ComponentConfig):
        pass

    def __init__(self, config: BaseModel | None = None, **options: Any) -> None:
        self.config = config if config is not None else self.Config(**options)

    def preflight(self, run: Run) -> None:
        """Checks that need neither data nor a run directory (a device that exists, a model
        directory that is there): called before the run directory is created, so a config that
        cannot work leaves no failed run behind. Raise a ConfigError; return nothing."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


# ---------------------------------------------------------------------------------------------


class DataSource(Component):
    """Loads data and splits it. Implement :meth:`load`; implement :meth:`read_inputs` to support
    ``hookforge predict``."""

    kind = "data"

    def load(self, run: Run) -> Dataset:
        raise NotImplementedError

    def read_inputs(self, run: Run, path: Path) -> Any:
        from hookforge.errors import UsageError

        raise UsageError(f"data source '{self.plugin_name}' cannot read prediction inputs")

    @hookimpl
    def hookforge_load_data(self, run: Run) -> Dataset:
        return self.load(run)

    @hookimpl
    def hookforge_read_inputs(self, run: Run, path: Path) -> Any:
        return self.read_inputs(run, path)


class Model(Component):
    """A trainable model. ``default_loop`` names the loop used when the config has none.

    Implement :meth:`build` (create the network or estimator), :meth:`predict`, :meth:`save` and
    :meth:`load` (formats that load without running code). Models trained in one call implement
    :meth:`fit` and use the built-in ``simple`` loop.
    """

    kind = "model"
    default_loop: ClassVar[str | None] = "simple"

    def build(self, run: Run, dataset: Dataset) -> None:
        """Create the underlying network or estimator for ``dataset.info``."""

    def fit(self, run: Run, dataset: Dataset) -> None:
        raise NotImplementedError(f"model '{self.plugin_name}' has no fit(); select a loop for it")

    def predict(self, inputs: Any) -> Predictions:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path, info: DatasetInfo) -> None:
        raise NotImplementedError

    def mlflow_model(self) -> tuple[str, Any, dict[str, Any]] | None:
        """The trained model as MLflow can save it, for trackers that log models: the flavor module
        (``"lightgbm"``, ``"xgboost"``, ``"sklearn"``...), the object, and keyword arguments of
        that flavor's ``save_model``. None (the default) when there is no flavor that saves it
        without pickle."""
        return None

    @hookimpl
    def hookforge_build_model(self, run: Run, dataset: Dataset) -> Model:
        self.build(run, dataset)
        return self

    @hookimpl
    def hookforge_load_model(self, run: Run, path: Path) -> Model:
        self.load(path, run.dataset_info)
        return self

    @hookimpl
    def hookforge_predict(self, run: Run, model: Model, inputs: Any) -> Predictions:
        return model.predict(inputs)


class Loop(Component):
    """Trains a model: implement :meth:`fit` (see ``hookforge_fit`` for how to report progress)."""

    kind = "loop"

    def fit(self, run: Run, model: Model, dataset: Dataset) -> FitResult:
        raise NotImplementedError

    @hookimpl
    def hookforge_fit(self, run: Run, model: Model, dataset: Dataset) -> FitResult:
        return self.fit(run, model, dataset)


class Evaluator(Component):
    """Computes metrics from predictions: implement :meth:`evaluate`; ``tasks`` lists the tasks it
    applies to (it is skipped for others)."""

    kind = "evaluator"
    tasks: ClassVar[tuple[str, ...]] = ()

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, float]:
        raise NotImplementedError

    @hookimpl
    def hookforge_evaluate(self, run: Run, split: str, predictions: Predictions,
                           final: bool) -> dict[str, float]:
        if self.tasks and predictions.task not in self.tasks:
            return {}
        return self.evaluate(run, split, predictions, final)


class Searcher(Component):
    """Searches a space of configs: implement :meth:`search` with ``session.run_trial``."""

    kind = "searcher"

    def search(self, session: SearchSession) -> SearchResult:
        raise NotImplementedError

    @hookimpl
    def hookforge_search(self, session: SearchSession) -> SearchResult:
        return self.search(session)


class Tracker(Component):
    """An experiment tracker, in the spirit of Lightning's Logger: a small interface, the SDK
    imported lazily inside the methods, :meth:`finalize` at the end.

    Failures never stop training: the first exception of a tracker is logged once, the tracker is
    switched off for the rest of the run, and ``hookforge sync`` can replay the local record later.
    Set ``critical = True`` to let exceptions through (the local record does).
    """

    kind = "tracker"
    critical: ClassVar[bool] = False

    def __init__(self, config: BaseModel | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.failed: str | None = None

    # -- the interface a tracker implements -------------------------------------------------
    def start(self, run: Run) -> None:
        """Open (or, on resume, reopen) the tracker's run."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Record the flattened config."""

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None,
                    split: str) -> None:
        """Record metric values of ``split`` at ``step``."""

    def log_artifact(self, path: Path, kind: str) -> None:
        """Copy a file of the run record."""

    def log_event(self, event: str, payload: dict[str, Any]) -> None:
        """Record a lifecycle event."""

    def finalize(self, status: str) -> None:
        """Flush and close with the run's final status."""

    def end_study(self, session: SearchSession, result: SearchResult) -> None:
        """A search this tracker followed has ended (close the study's parent runs)."""

    # -- replay of a local record (``hookforge sync``) --------------------------------------
    def sync(self, record: Any) -> str:
        """Replay a finished run record into this tracker. Trackers that can do so idempotently
        override this; returns a one-line summary."""
        from hookforge.errors import UsageError

        raise UsageError(f"tracker '{self.plugin_name}' does not support sync")

    # -- champion selection from the tracker's own runs (``hookforge compare --tracker``) ---------
    def query_runs(self, experiment: str, metric: str) -> list[dict[str, Any]]:
        """Finished runs of ``experiment``: dicts with run_id, name, value (of ``metric``),
        run_dir and n_samples where known."""
        from hookforge.errors import UsageError

        raise UsageError(f"tracker '{self.plugin_name}' cannot be queried for runs")

    def register_champion(self, run_id: str, model_name: str) -> str:
        """Promote the run's model as the champion of ``model_name``; returns the version."""
        from hookforge.errors import UsageError

        raise UsageError(f"tracker '{self.plugin_name}' has no model registry")

    # -- hook wiring, with failure isolation --------------------------------------------------
    def _guard(self, method: str, *args: Any) -> None:
        if self.failed is not None:
            return
        try:
            getattr(self, method)(*args)
        except Exception as exc:
            if self.critical:
                raise
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning("tracker '%s' failed in %s and is off for the rest of this run: %s; "
                        "replay it later with `hookforge sync RUN_DIR --tracker %s`",
                        self.plugin_name, method, self.failed, self.plugin_name)

    @hookimpl
    def hookforge_run_start(self, run: Run) -> None:
        self._guard("start", run)

    @hookimpl
    def hookforge_log_params(self, params: dict[str, Any]) -> None:
        self._guard("log_params", params)

    @hookimpl
    def hookforge_log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None,
                              split: str) -> None:
        if self.failed is None:  # inline check: this is the hot path
            self._guard("log_metrics", metrics, step, epoch, split)

    @hookimpl
    def hookforge_log_artifact(self, path: Path, kind: str) -> None:
        self._guard("log_artifact", path, kind)

    @hookimpl
    def hookforge_log_event(self, event: str, payload: dict[str, Any]) -> None:
        self._guard("log_event", event, payload)

    @hookimpl
    def hookforge_after_epoch(self, result: EpochResult) -> None:
        self._guard("log_event", "epoch_end", {"epoch": result.epoch, "step": result.step,
                                               "metrics": result.metrics,
                                               "duration_s": result.duration_s})

    @hookimpl
    def hookforge_on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        self._guard("log_event", "checkpoint", {"tag": checkpoint.tag, "epoch": checkpoint.epoch,
                                                "step": checkpoint.step,
                                                "metric": checkpoint.metric})

    @hookimpl
    def hookforge_on_exception(self, error: BaseException) -> None:
        self._guard("log_event", "exception", {"type": type(error).__name__,
                                               "message": str(error)})

    @hookimpl
    def hookforge_after_search(self, session: SearchSession, result: SearchResult) -> None:
        self._guard("end_study", session, result)

    @hookimpl
    def hookforge_run_end(self, status: str) -> None:
        self._guard("finalize", status)
        if self.failed is not None and self.plugin_name:
            log.warning("tracker '%s' did not receive everything (%s)", self.plugin_name,
                        self.failed)
