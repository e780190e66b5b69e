"""Fixtures of the hookforge-gbm tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def cancer(tiny_config):
    """A config on breast_cancer with a small, fast model."""
    def make(model: dict, **sections):
        return tiny_config(data={"name": "sklearn", "dataset": "breast_cancer",
                                 "split": {"val": 0.15, "test": 0.15, "stratify": True}},
                           model=model, **sections)
    return make


@pytest.fixture
def mixed_csv(hookforge_tmp) -> Path:
    """A CSV with numeric, categorical and missing values; the label depends on both kinds."""
    rng = np.random.default_rng(0)
    n = 400
    color = rng.choice(["red", "green", "blue"], n)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x2[rng.random(n) < 0.05] = np.nan
    logit = 1.5 * x1 + (color == "red") * 2.0 - (color == "blue") * 1.0 + np.nan_to_num(x2)
    label = np.where(logit + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    path = hookforge_tmp / "mixed.csv"
    pd.DataFrame({"x1": x1, "x2": x2, "color": color, "label": label}).to_csv(path, index=False)
    return path
