"""A majority-class model used by the tests as a third-party plugin (packaged on the fly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hookforge import ComponentConfig, Model
from hookforge.types import Predictions


class Majority(Model):
    """Predicts the most frequent training class."""

    class Config(ComponentConfig):
        pass

    def build(self, run: Any, dataset: Any) -> None:
        self.classes = dataset.info.classes

    def fit(self, run: Any, dataset: Any) -> None:
        import numpy as np

        self.label = int(np.bincount(dataset.split("train").y).argmax())

    def predict(self, inputs: Any) -> Predictions:
        import numpy as np

        n = len(inputs)
        scores = np.zeros((n, len(self.classes)))
        scores[:, self.label] = 1.0
        return Predictions(np.full(n, self.label), scores, classes=self.classes)

    def save(self, directory: Path) -> None:
        (directory / "majority.json").write_text(json.dumps({"label": self.label}))

    def load(self, directory: Path, info: Any) -> None:
        self.classes = info.classes
        self.label = json.loads((directory / "majority.json").read_text())["label"]
