"""The ``latency`` evaluator: how long the run's model takes to predict, in milliseconds per row.

For searches that trade quality against speed (``metric: [val/f1_macro, val/latency_ms]``, a Pareto
front): at the final evaluation of a split it predicts the split's first ``rows`` rows again,
``batch_size`` rows per call, through the same ``hookforge_predict`` hook as everything else, and
reports the fastest of ``repeats`` passes (the one the machine disturbed least; the first pass also
pays any warm-up). The time is wall-clock on the machine that evaluates: compare runs timed on
one machine.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class LatencyConfig(ComponentConfig):
    rows: int = Field(64, ge=1, description="rows of the split timed (from its start)")
    batch_size: int = Field(1, ge=1, description="rows per predict call (1: one request at a time)")
    repeats: int = Field(3, ge=1, description="timed passes; the fastest counts")


class LatencyEvaluator(Evaluator):
    """Prediction latency of the run's model (``latency_ms``: milliseconds per row)."""

    Config = LatencyConfig

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, float]:
        if not final or run.model is None or run.dataset is None:
            return {}  # loops score val every epoch: timing it each time would slow training
        inputs = run.dataset.split(split).X
        n = min(self.config.rows, len(inputs))
        if n == 0:
            return {}
        size = self.config.batch_size
        batches = [_rows(inputs, start, min(start + size, n)) for start in range(0, n, size)]
        fastest = float("inf")
        for _ in range(self.config.repeats):
            started = time.perf_counter()
            for batch in batches:
                run.hook.hookforge_predict(run=run, model=run.model, inputs=batch)
            fastest = min(fastest, time.perf_counter() - started)
        return {"latency_ms": fastest / n * 1000.0}


def _rows(inputs: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a split's inputs (a DataFrame by position, arrays and lists by slice)."""
    return inputs.iloc[start:stop] if hasattr(inputs, "iloc") else inputs[start:stop]
