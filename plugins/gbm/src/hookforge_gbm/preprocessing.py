"""The preprocessing pipeline of tabular models: a scikit-learn ``ColumnTransformer`` fit on the
training split only, saved next to the model (skops) so that ``predict`` applies the same steps.

Numeric columns: optional imputation and scaling. Categorical columns (``data.categorical``, listed
or detected): one-hot encoding that ignores categories unseen in training. Optional univariate
feature selection afterwards. With no step to do, the pipeline is skipped entirely and the frame is
handed to the estimator as one float32 array (trees need no scaling and handle NaN themselves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


class PreprocessingConfig(ComponentConfig):
    impute: Literal["none", "median", "mean", "most_frequent"] | None = Field(
        None, description="missing numeric values (default: the model's choice)")
    scale: bool | None = Field(None, description="standardize numeric columns (default: the model's)")
    one_hot_max_categories: int | None = Field(
        None, ge=2, description="cap on one-hot columns per categorical (rarest grouped together)")
    select_k_best: int | None = Field(None, ge=1, description="keep the k best columns (ANOVA F-test)")


def build(config: PreprocessingConfig, *, numeric: list[str], categorical: list[str], task: str,
          impute_default: str, scale_default: bool) -> Any | None:
    """The unfitted pipeline, or None when no step is needed."""
    impute = config.impute or impute_default
    scale = scale_default if config.scale is None else config.scale
    if impute == "none" and not scale and not categorical and config.select_k_best is None:
        return None  # nothing to import either: scikit-learn's transformers pull in scipy.stats
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric_steps: list[tuple[str, Any]] = []
    if impute != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=impute)))
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", Pipeline(numeric_steps) if numeric_steps else "passthrough", numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist" if config.one_hot_max_categories
                                else "ignore", max_categories=config.one_hot_max_categories,
                                sparse_output=False, dtype="float32")
        parts.append(("categorical", Pipeline([("fill", SimpleImputer(strategy="constant",
                                                                       fill_value="missing")),
                                               ("one_hot", encoder)]), categorical))
    columns = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    if config.select_k_best is None:
        return columns
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression

    score = f_classif if task == "classification" else f_regression
    return Pipeline([("columns", columns), ("select", SelectKBest(score, k=config.select_k_best))])


def as_matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The numeric columns as one float32 array (what the estimators train on without a pipeline)."""
    import numpy as np

    return frame[columns].to_numpy(dtype=np.float32, na_value=np.nan)


def feature_names(pipeline: Any | None, columns: list[str]) -> list[str]:
    if pipeline is None:
        return list(columns)
    try:
        return [str(name) for name in pipeline.get_feature_names_out()]
    except (AttributeError, ValueError):
        return [f"f{i}" for i in range(len(columns))]
