"""The ``perplexity`` evaluator of language models: token-weighted mean negative log-likelihood
and its exponential. A language model's predictions carry, per text, the summed NLL of its
predicted tokens and how many there were (``y_pred[:, 0]`` and ``y_pred[:, 1]``), so the metric is
weighted by tokens, not by texts, whatever the batching."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hookforge.components import Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions

LM_COLUMNS = ["nll_sum", "tokens"]


class PerplexityEvaluator(Evaluator):
    """Perplexity and NLL per token of a language model (the default for language modelling)."""

    tasks = ("language_modeling",)

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, float]:
        import numpy as np

        values = np.asarray(predictions.y_pred, dtype=np.float64).reshape(-1, 2)
        tokens = float(values[:, 1].sum())
        if tokens == 0:
            return {}
        nll = float(values[:, 0].sum()) / tokens
        return {"nll": nll, "perplexity": math.exp(min(nll, 700.0)), "tokens": tokens}
