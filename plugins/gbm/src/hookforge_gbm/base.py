"""What every tabular model shares: the preprocessing pipeline, class weights, turning estimator
output into :class:`~hookforge.types.Predictions`, and the saved layout.

A subclass implements four methods on plain float arrays: :meth:`fit_matrix` (train, calling
``on_round`` after each boosting round where there are rounds), :meth:`predict_matrix` (class
probabilities or values), :meth:`save_estimator` and :meth:`load_estimator`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, Model
from hookforge.errors import CheckpointError, ConfigError, DataError
from hookforge.types import Predictions
from hookforge_gbm import persist, preprocessing
from hookforge_gbm.preprocessing import PreprocessingConfig

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from hookforge.run import Run
    from hookforge.types import Dataset, DatasetInfo

# Called after each boosting round with the validation metrics of that round; returns True to stop.
RoundCallback = Callable[[int, dict[str, float]], bool]

PIPELINE_FILE = "preprocessing.skops"
META_FILE = "tabular.json"


class TabularModelConfig(ComponentConfig):
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    class_weight: Literal["balanced"] | dict[str, float] | None = Field(
        None, description="'balanced', or a weight per class label (classification only)")


class TabularModel(Model):
    """Base of the models of hookforge-gbm (see the module docstring)."""

    default_loop = "tabular"
    impute_default: ClassVar[str] = "none"  # trees split on missing values natively
    scale_default: ClassVar[bool] = False
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")

    Config = TabularModelConfig

    pipeline: Any = None
    info: DatasetInfo | None = None
    seed: int = 0
    # The trained model's output on the validation split (as predict_matrix gives it) when the
    # library computed it while training anyway; the loop hands it to the run's evaluation.
    val_output: np.ndarray | None = None

    # -- what subclasses implement -----------------------------------------------------------------
    def fit_matrix(self, run: Run, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                   X_val: np.ndarray | None, y_val: np.ndarray | None,
                   on_round: RoundCallback | None) -> None:
        raise NotImplementedError

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) for classification, values (n,) for regression."""
        raise NotImplementedError

    def save_estimator(self, directory: Path) -> None:
        raise NotImplementedError

    def load_estimator(self, directory: Path) -> None:
        raise NotImplementedError

    # -- the Model interface ------------------------------------------------------------------------
    @property
    def task(self) -> str:
        assert self.info is not None
        return self.info.task

    @property
    def rounds(self) -> int:
        """Boosting rounds in the trained model (0 for estimators trained in one go)."""
        return 0

    @property
    def n_classes(self) -> int:
        assert self.info is not None
        return self.info.n_classes or 0

    def build(self, run: Run, dataset: Dataset) -> None:
        if dataset.task not in self.tasks:
            raise DataError(f"model '{self.plugin_name}' supports {' and '.join(self.tasks)}; the "
                            f"data's task is {dataset.task}")
        self.info, self.seed = dataset.info, run.seed
        self.pipeline = None

    def fit(self, run: Run, dataset: Dataset, on_round: RoundCallback | None = None) -> None:
        """Fit the preprocessing on the training split, then the estimator (validation split for
        early stopping and per-round metrics when there is one)."""
        train, val = dataset.split("train"), dataset.splits.get("val")
        self.val_output = None
        X = self._fit_pipeline(train.X, train.y)
        X_val = self.transform(val.X) if val is not None else None
        self.fit_matrix(run, X, train.y, self._sample_weights(train.y), X_val,
                        val.y if val is not None else None, on_round)

    def transform(self, inputs: Any) -> np.ndarray:
        frame = self._frame(inputs)
        if self.pipeline is None:
            return preprocessing.as_matrix(frame, self._numeric)
        import numpy as np

        return np.asarray(self.pipeline.transform(frame), dtype=np.float32)

    def predict(self, inputs: Any) -> Predictions:
        return self.to_predictions(self.predict_matrix(self.transform(inputs)))

    def fit_predictions(self) -> dict[str, Predictions]:
        """Predictions of splits that fitting left behind (``val_output``), by split."""
        return {} if self.val_output is None else {"val": self.to_predictions(self.val_output)}

    def to_predictions(self, output: np.ndarray) -> Predictions:
        import numpy as np

        assert self.info is not None
        if self.task == "regression":
            return Predictions(y_pred=np.asarray(output, dtype=np.float64), task="regression")
        scores = np.asarray(output, dtype=np.float64)
        return Predictions(y_pred=scores.argmax(axis=1), scores=scores, classes=self.info.classes,
                           task="classification")

    def save(self, directory: Path) -> None:
        assert self.info is not None
        if self.pipeline is not None:
            persist.dump(self.pipeline, directory / PIPELINE_FILE)
        self.save_estimator(directory)
        (directory / META_FILE).write_text(json.dumps({
            "model": self.plugin_name, "task": self.info.task,
            "features": self.info.feature_names, "categorical": self._categorical,
            "pipeline": self.pipeline is not None,
            "features_out": preprocessing.feature_names(self.pipeline, self._numeric),
        }, indent=2))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        meta_file = directory / META_FILE
        if not meta_file.is_file():
            raise CheckpointError(f"{directory} has no {META_FILE}: it is not a tabular model")
        meta = json.loads(meta_file.read_text())
        if meta.get("model") != self.plugin_name:
            raise CheckpointError(f"{directory} holds a '{meta.get('model')}' model, not "
                                  f"'{self.plugin_name}'")
        self.info = info
        self.pipeline = persist.load(directory / PIPELINE_FILE) if meta.get("pipeline") else None
        self.load_estimator(directory)

    # -- helpers --------------------------------------------------------------------------------------
    @property
    def _categorical(self) -> list[str]:
        assert self.info is not None
        return list(self.info.extra.get("categorical", []))

    @property
    def _numeric(self) -> list[str]:
        assert self.info is not None and self.info.feature_names is not None
        categorical = set(self._categorical)
        return [c for c in self.info.feature_names if c not in categorical]

    def _frame(self, inputs: Any) -> Any:
        import pandas as pd

        assert self.info is not None and self.info.feature_names is not None
        if isinstance(inputs, pd.DataFrame):
            return inputs
        return pd.DataFrame(inputs, columns=self.info.feature_names)

    def _fit_pipeline(self, X: Any, y: Any) -> np.ndarray:
        config: PreprocessingConfig = self.config.preprocessing
        frame = self._frame(X)
        self.pipeline = preprocessing.build(
            config, numeric=self._numeric, categorical=self._categorical, task=self.task,
            impute_default=self.impute_default, scale_default=self.scale_default)
        if self.pipeline is None:
            return preprocessing.as_matrix(frame, self._numeric)
        import numpy as np

        try:
            out = self.pipeline.fit_transform(frame, y)
        except ValueError as exc:
            raise DataError(f"model '{self.plugin_name}': preprocessing failed: "
                            f"{str(exc).splitlines()[0]}") from None
        return np.asarray(out, dtype=np.float32)

    def _sample_weights(self, y: Any) -> np.ndarray | None:
        weights = self.config.class_weight
        if weights is None:
            return None
        if self.task != "classification":
            raise ConfigError(f"model.class_weight applies to classification; the task is {self.task}")
        import numpy as np
        from sklearn.utils.class_weight import compute_sample_weight

        if weights == "balanced":
            return compute_sample_weight("balanced", y)
        assert self.info is not None and self.info.classes is not None
        labels = [str(c) for c in self.info.classes]
        unknown = [k for k in weights if k not in labels]
        if unknown:
            raise ConfigError(f"model.class_weight: '{unknown[0]}' is not a class; classes: "
                              f"{', '.join(labels)}")
        per_class = np.array([weights.get(label, 1.0) for label in labels])
        return per_class[np.asarray(y)]
