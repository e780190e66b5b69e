"""scikit-learn estimators as hookforge models: logistic regression and random forests.

They train in one call (no rounds to report); the preprocessing pipeline and the estimator are
saved with skops.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from hookforge_gbm import persist
from hookforge_gbm.base import RoundCallback, TabularModel, TabularModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from hookforge.run import Run

ESTIMATOR_FILE = "estimator.skops"


class SklearnModel(TabularModel):
    """Shared fit/predict/save for scikit-learn estimators; subclasses build the estimator."""

    estimator: Any = None

    def make_estimator(self) -> Any:
        raise NotImplementedError

    def fit_matrix(self, run: Run, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                   X_val: np.ndarray | None, y_val: np.ndarray | None,
                   on_round: RoundCallback | None) -> None:
        self.estimator = self.make_estimator()
        self.estimator.fit(X, y, sample_weight=weights)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.task == "regression":
            return self.estimator.predict(X)
        # columns in the order of the estimator's classes_, which may miss a class absent from
        # the training split: place them in the dataset's class order
        proba = self.estimator.predict_proba(X)
        out = np.zeros((len(X), self.n_classes))
        out[:, np.asarray(self.estimator.classes_, dtype=int)] = proba
        return out

    def save_estimator(self, directory: Path) -> None:
        persist.dump(self.estimator, directory / ESTIMATOR_FILE)

    def load_estimator(self, directory: Path) -> None:
        self.estimator = persist.load(directory / ESTIMATOR_FILE)

    def mlflow_model(self) -> tuple[str, Any, dict[str, Any]] | None:
        """The preprocessing and the estimator as one scikit-learn pipeline, saved with skops."""
        from importlib.metadata import version

        from sklearn.pipeline import make_pipeline

        model = make_pipeline(self.pipeline, self.estimator) if self.pipeline is not None \
            else self.estimator
        return "sklearn", model, {
            "serialization_format": "skops",
            "skops_trusted_types": sorted(persist.TRUSTED_TYPES | {"numpy.dtype"}),
            "pip_requirements": [f"scikit-learn=={version('scikit-learn')}",
                                 f"skops=={version('skops')}"]}


class LogisticRegressionConfig(TabularModelConfig):
    C: float = Field(1.0, gt=0, description="inverse regularisation strength")
    penalty: Literal["l2", "l1", "elasticnet", "none"] = "l2"
    l1_ratio: float = Field(0.5, ge=0, le=1, description="elastic-net mixing (penalty=elasticnet)")
    max_iter: int = Field(1000, ge=1)


class LogisticRegressionModel(SklearnModel):
    """Logistic regression (scikit-learn) on imputed, standardized features."""

    Config = LogisticRegressionConfig
    impute_default = "median"
    scale_default = True
    tasks: ClassVar[tuple[str, ...]] = ("classification",)

    def make_estimator(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        c = self.config
        options: dict[str, Any] = {"C": c.C, "max_iter": c.max_iter, "random_state": self.seed}
        if c.penalty == "none":
            options["C"] = float("inf")  # scikit-learn >= 1.8 spells "no penalty" as C=inf
        elif c.penalty != "l2":
            options.update(solver="saga", l1_ratio=1.0 if c.penalty == "l1" else c.l1_ratio)
        return LogisticRegression(**options)


class RandomForestConfig(TabularModelConfig):
    n_estimators: int = Field(300, ge=1)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(1, ge=1)
    max_features: float | Literal["sqrt", "log2"] | None = Field(
        "sqrt", description="features tried per split (None: all)")
    n_jobs: int = Field(-1, description="-1: all cores")


class RandomForestModel(SklearnModel):
    """Random forest (scikit-learn), classification or regression."""

    Config = RandomForestConfig
    impute_default = "median"

    def make_estimator(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        c = self.config
        cls = RandomForestRegressor if self.task == "regression" else RandomForestClassifier
        max_features = 1.0 if c.max_features is None else c.max_features
        return cls(n_estimators=c.n_estimators, max_depth=c.max_depth,
                   min_samples_leaf=c.min_samples_leaf, max_features=max_features,
                   n_jobs=c.n_jobs, random_state=self.seed)
