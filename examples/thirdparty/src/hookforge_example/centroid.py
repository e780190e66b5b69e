"""A nearest-centroid classifier in plain numpy: the smallest complete hookforge model.

It shows the five methods a model implements (build, fit, predict, save, load), a pydantic
``Config``, and a save format that loads without running code (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hookforge import ComponentConfig, DataError, Model
from hookforge.types import DatasetInfo, Predictions


class NearestCentroid(Model):
    """Classifies each row by its nearest class centroid (optionally on standardized features)."""

    default_loop = "simple"

    class Config(ComponentConfig):
        metric: Literal["euclidean", "manhattan"] = Field("euclidean", description="distance")
        standardize: bool = Field(True, description="scale features by training mean and std")
        temperature: float = Field(1.0, gt=0, description="softmax temperature of the scores")

    def build(self, run: Any, dataset: Any) -> None:
        if dataset.task != "classification":
            raise DataError(f"model 'centroid' classifies; the data's task is {dataset.task}")
        self.info = dataset.info
        self.centroids: Any = None

    def fit(self, run: Any, dataset: Any) -> None:
        import numpy as np

        train = dataset.split("train")
        X = np.asarray(train.X, dtype=np.float64)
        self.mean = X.mean(axis=0) if self.config.standardize else np.zeros(X.shape[1])
        std = X.std(axis=0) if self.config.standardize else np.ones(X.shape[1])
        self.std = np.where(std > 0, std, 1.0)
        Z = (X - self.mean) / self.std
        self.centroids = np.stack([Z[train.y == k].mean(axis=0)
                                   for k in range(len(self.info.classes))])

    def predict(self, inputs: Any) -> Predictions:
        import numpy as np

        Z = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.std
        diff = Z[:, None, :] - self.centroids[None, :, :]
        if self.config.metric == "euclidean":
            distance = np.sqrt((diff ** 2).sum(axis=2))
        else:
            distance = np.abs(diff).sum(axis=2)
        logits = -distance / self.config.temperature
        logits -= logits.max(axis=1, keepdims=True)
        scores = np.exp(logits)
        scores /= scores.sum(axis=1, keepdims=True)
        return Predictions(y_pred=distance.argmin(axis=1), scores=scores,
                           classes=self.info.classes, task="classification")

    def save(self, directory: Path) -> None:
        (directory / "centroid.json").write_text(json.dumps({
            "centroids": self.centroids.tolist(), "mean": self.mean.tolist(),
            "std": self.std.tolist()}))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        import numpy as np

        data = json.loads((directory / "centroid.json").read_text())
        self.info = info
        self.centroids, self.mean, self.std = (np.asarray(data[k]) for k in ("centroids", "mean", "std"))
        if self.centroids.shape[1] != info.n_features:
            from hookforge import CheckpointError

            raise CheckpointError(f"{directory}: centroids have {self.centroids.shape[1]} features, "
                                  f"the data has {info.n_features}")
