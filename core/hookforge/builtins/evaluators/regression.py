"""The ``regression`` evaluator: MSE, RMSE, MAE and R² from scikit-learn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookforge.components import Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class RegressionEvaluator(Evaluator):
    """Regression metrics."""

    tasks = ("regression",)

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, float]:
        import numpy as np
        from sklearn import metrics as skm

        y_true = np.asarray(predictions.y_true, dtype=np.float64)
        y_pred = np.asarray(predictions.y_pred, dtype=np.float64)
        mse = float(skm.mean_squared_error(y_true, y_pred))
        return {"mse": mse, "rmse": mse ** 0.5, "mae": float(skm.mean_absolute_error(y_true, y_pred)),
                "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")}
