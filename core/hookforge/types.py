"""Typed values passed to and returned from hooks.

Hooks receive these objects rather than loose arguments so that a field can be added later without
breaking any plugin (pluggy matches hook arguments by name). numpy and pandas are only needed by the
methods that use them, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Task = Literal["classification", "multilabel", "regression", "reconstruction", "reinforcement",
               "language_modeling", "generation", "retrieval", "preference", "reward", "other"]

SPLITS = ("train", "val", "test")


@dataclass
class DatasetInfo:
    """What a model needs to know about its data to be built or loaded again (saved as dataset.json)."""

    task: str
    classes: list[Any] | None = None
    feature_names: list[str] | None = None
    target: str | list[str] | None = None
    n_features: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetInfo:
        return cls(**data)


@dataclass
class Split:
    """One split of a dataset: inputs ``X`` (array, frame or anything the model understands) and
    targets ``y`` (None where there are none, e.g. for prediction inputs)."""

    X: Any
    y: Any = None

    def __len__(self) -> int:
        return len(self.X)


@dataclass
class Dataset:
    """What a data source returns: named splits plus the :class:`DatasetInfo`."""

    info: DatasetInfo
    splits: dict[str, Split]

    @property
    def task(self) -> str:
        return self.info.task

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            from hookforge.errors import DataError

            raise DataError(
                f"the dataset has no '{name}' split (it has: {', '.join(self.splits) or 'none'})"
            ) from None


@dataclass
class Predictions:
    """A model's output on one split or input file.

    ``y_pred`` holds labels (classification) or values (regression); ``scores`` the class
    probabilities, shape (n, n_classes), where the model has them.
    """

    y_pred: Any
    scores: Any = None
    y_true: Any = None
    classes: list[Any] | None = None
    task: str = "classification"

    def __len__(self) -> int:
        return len(self.y_pred)

    def to_frame(self) -> Any:
        import numpy as np
        import pandas as pd

        y_pred = np.asarray(self.y_pred)
        if y_pred.ndim == 2:  # multi-label: one column per label
            names = self.classes or [str(i) for i in range(y_pred.shape[1])]
            frame = pd.DataFrame({f"pred_{c}": y_pred[:, i] for i, c in enumerate(names)})
        elif self.classes is not None and self.task == "classification" and y_pred.dtype.kind in "iu":
            # labels are class indices internally; users get the original class labels back
            frame = pd.DataFrame({"prediction": np.asarray(self.classes, dtype=object)[y_pred]})
        else:
            frame = pd.DataFrame({"prediction": y_pred})
        if self.scores is not None:
            scores = np.asarray(self.scores)
            names = self.classes or [str(i) for i in range(scores.shape[1])]
            for i, c in enumerate(names):
                frame[f"prob_{c}"] = scores[:, i]
        return frame


@dataclass(slots=True)
class StepResult:
    """Aggregated training progress, emitted every ``run.log_every_n_steps`` steps (never per step)."""

    step: int
    epoch: int
    metrics: dict[str, float]


@dataclass
class EpochResult:
    """The end of one unit of progress of a loop: an epoch of minibatches, a boosting round, a PPO
    iteration. ``metrics`` keys are ``split/name`` (e.g. ``val/accuracy``); pruners and early stopping
    read them here."""

    epoch: int
    step: int
    metrics: dict[str, float]
    duration_s: float | None = None

    def get(self, key: str) -> float | None:
        return self.metrics.get(key)


@dataclass
class CheckpointInfo:
    """A checkpoint that was just written: ``tag`` is ``best``, ``last`` or ``step-N``."""

    tag: str
    path: Path
    epoch: int
    step: int
    metric: float | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


@dataclass
class FitResult:
    """What a loop returns. The model must be left in its best state (or last, where no best exists)."""

    epochs: int = 0
    steps: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The returned model's predictions of splits the loop has already predicted (the run's final
    # evaluation reuses them instead of predicting those splits a second time). Only for
    # predictions of the model as returned: a loop that restores its best weights leaves it out.
    predictions: dict[str, Predictions] = field(default_factory=dict, repr=False)


@dataclass
class TrialResult:
    """One trial of a search: the overrides it ran with and its outcome."""

    number: int
    params: dict[str, Any]
    state: str  # complete | pruned | failed
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | list[float] | None = None
    run_dir: Path | None = None
    duration_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        return data


@dataclass
class SearchResult:
    """What a searcher returns: every trial, and the best one(s) by the objective."""

    study: str
    trials: list[TrialResult]
    best: list[TrialResult]
    output_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays, paths and anything with a sensible str()."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
