"""The ``episodes`` evaluator: what evaluation episodes of a policy returned.

Mean, std, median, min and max return, mean length, and a success rate with its Jeffreys
interval (Beta(s + 1/2, n - s + 1/2), the 10th and 90th percentiles by default): success from
the environment's ``info["is_success"]`` where it reports one, else a return at or above
``success_threshold`` when that is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class EpisodesEvaluator(Evaluator):
    """Return statistics and success rate (Jeffreys interval) of evaluation episodes."""

    tasks = ("rl",)

    class Config(ComponentConfig):
        success_threshold: float | None = Field(
            None, description="a return at or above this counts as a success (when the env "
                              "reports no info['is_success'])")
        interval: float = Field(0.8, gt=0, lt=1, description="mass of the success-rate interval")

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, Any]:
        import numpy as np

        from hookforge.compare import jeffreys_interval

        if final and split == "test" and getattr(run, "figures", False) and run.record is not None:
            from hookforge_ppo.figures import draw

            draw(run.record.read_metrics(), run.figures_dir, run.name)
        returns = np.asarray(predictions.y_pred, dtype=np.float64)
        if len(returns) == 0:
            return {}
        lengths = np.asarray(getattr(predictions, "lengths", []) or [np.nan] * len(returns))
        out: dict[str, Any] = {
            "mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "median_return": float(np.median(returns)), "min_return": float(returns.min()),
            "max_return": float(returns.max()), "mean_length": float(np.mean(lengths)),
            "episodes": float(len(returns))}
        reported = [s for s in getattr(predictions, "successes", []) or [] if s is not None]
        if len(reported) == len(returns):
            successes = np.asarray(reported, dtype=bool)
        elif self.config.success_threshold is not None:
            successes = returns >= self.config.success_threshold
        else:
            return out
        k, n = int(successes.sum()), len(successes)
        low, high = jeffreys_interval(k, n, self.config.interval)
        out.update({"success_rate": k / n, "success_rate_low": low, "success_rate_high": high})
        return out
