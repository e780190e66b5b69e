"""The ``tabular`` loop: fits a tabular model once, reporting every boosting round.

Each round's validation metrics go through ``run.end_epoch`` (so trackers log them and the optuna
pruner can stop the trial); at the end the model is saved as the ``best`` checkpoint (early
stopping already left it at its best round), and the run's evaluation scores it on val and test
with every evaluator. Estimators without rounds report one epoch with their val scores instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import Field

from hookforge.components import ComponentConfig, Loop
from hookforge.errors import UsageError
from hookforge.types import FitResult
from hookforge_gbm.base import TabularModel

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.components import Model
    from hookforge.run import Run
    from hookforge.types import Dataset, Predictions


class TabularLoop(Loop):
    """One fit of a tabular model with per-round reports (see the module docstring)."""

    class Config(ComponentConfig):
        report_every: int = Field(1, ge=1, description="report validation metrics every k rounds")

    def fit(self, run: Run, model: Model, dataset: Dataset) -> FitResult:
        if not isinstance(model, TabularModel):
            raise UsageError(f"loop 'tabular' trains the models of hookforge-gbm; model "
                             f"'{model.plugin_name}' has its own loop (leave loop unset)")
        every = self.config.report_every
        started = last = time.perf_counter()
        rounds = reported = 0

        def on_round(index: int, metrics: dict[str, float]) -> bool:
            nonlocal rounds, last, reported
            rounds = index + 1
            if rounds % every == 0 and metrics:
                now = time.perf_counter()
                run.end_epoch(index, rounds, {f"val/{k}": v for k, v in metrics.items()},
                              duration_s=now - last)
                last, reported = now, reported + 1
            return run.should_stop

        run.hook.hookforge_before_epoch(run=run, epoch=0)
        model.fit(run, dataset, on_round)
        rounds = max(rounds, model.rounds, 1)
        best_epoch = max(model.rounds, 1) - 1  # early stopping left the model at its best round
        # Boosted models: the rounds were the epochs, and the run's final evaluation scores the
        # final model on val (with the library's own val output where it kept it).
        predictions: dict[str, Predictions] = model.fit_predictions()
        if "val" in dataset.splits and not reported:
            # one-shot estimators: a single epoch with the val scores, as the simple loop reports
            predictions["val"] = run.predict_split(model, dataset, "val")
            metrics = run.score(model, dataset, "val", predictions=predictions["val"])
            run.end_epoch(0, 1, {f"val/{k}": v for k, v in metrics.items()},
                          duration_s=time.perf_counter() - started)
        run.emit("fit_done", rounds=rounds, best_round=model.rounds or None,
                 duration_s=round(time.perf_counter() - started, 3))
        run.save_checkpoint("best", model.save, epoch=best_epoch, step=rounds)
        return FitResult(epochs=rounds, steps=rounds, best_epoch=best_epoch,
                         stop_reason=run.stop_reason, predictions=predictions)
