"""The ``simple`` loop: for models that train in one call (``Model.fit``), such as scikit-learn
estimators. It still reports like every loop: one epoch with the validation metrics, then the
``best`` checkpoint."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import Field

from hookforge.components import ComponentConfig, Loop
from hookforge.types import FitResult

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.components import Model
    from hookforge.run import Run
    from hookforge.types import Dataset, Predictions


class SimpleLoop(Loop):
    """Calls ``model.fit(run, dataset)`` once, scores the validation split, saves ``best``."""

    class Config(ComponentConfig):
        score_val: bool = Field(True, description="score the val split after fitting (for searchers)")

    def fit(self, run: Run, model: Model, dataset: Dataset) -> FitResult:
        run.hook.hookforge_before_epoch(run=run, epoch=0)
        started = time.perf_counter()
        model.fit(run, dataset)
        metrics: dict[str, float] = {}
        predictions: dict[str, Predictions] = {}
        if self.config.score_val and "val" in dataset.splits:
            predictions["val"] = run.predict_split(model, dataset, "val")
            scores = run.score(model, dataset, "val", predictions=predictions["val"])
            metrics = {f"val/{k}": v for k, v in scores.items()}
        run.end_epoch(0, 1, metrics, duration_s=time.perf_counter() - started)
        run.save_checkpoint("best", model.save, epoch=0, step=1)
        return FitResult(epochs=1, steps=1, stop_reason=run.stop_reason, predictions=predictions)
