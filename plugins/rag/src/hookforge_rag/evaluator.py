"""The ``retrieval`` evaluator: how well an index finds the relevant documents of each query.

For every k in ``ks``: recall@k (the fraction of a query's relevant documents in its top k,
averaged over queries), nDCG@k (binary relevance) and, against exact search when the index is
approximate, the overlap of its top k with the exact top k (``recall_vs_exact_at_k``). MRR is
over the largest k. Queries per second and mean latency come from the search time alone
(embedding the queries excluded). Names use ``_at_`` (``recall_at_10``) because trackers such as
MLflow refuse ``@`` in metric names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class RetrievalConfig(ComponentConfig):
    ks: list[int] = Field(default_factory=lambda: [1, 3, 5, 10], description="cut-offs")


class RetrievalEvaluator(Evaluator):
    """recall@k, MRR, nDCG@k, queries per second, recall against exact search."""

    tasks = ("retrieval",)
    Config = RetrievalConfig

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, Any]:
        hits = list(predictions.y_pred)
        relevant = list(predictions.y_true) if predictions.y_true is not None else None
        n = len(hits)
        if n == 0:
            return {}
        out: dict[str, Any] = {}
        search_s = float(getattr(predictions, "search_s", 0.0) or 0.0)
        if search_s > 0:
            out["queries_per_s"] = n / search_s
            out["latency_ms"] = 1000 * search_s / n
        exact = getattr(predictions, "exact", None)
        for k in sorted(set(self.config.ks)):
            if relevant is not None:
                recall = ndcg = 0.0
                for found, wanted in zip(hits, relevant, strict=True):
                    wanted_set = set(wanted)
                    top = list(found)[:k]
                    recall += len(wanted_set.intersection(top)) / len(wanted_set)
                    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(top) if d in wanted_set)
                    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(wanted_set))))
                    ndcg += dcg / ideal
                out[f"recall_at_{k}"] = recall / n
                out[f"ndcg_at_{k}"] = ndcg / n
            if exact is not None:
                overlap = sum(len(set(list(a)[:k]).intersection(list(b)[:k])) / max(1, min(k, len(b)))
                              for a, b in zip(hits, exact, strict=True))
                out[f"recall_vs_exact_at_{k}"] = overlap / n
        if relevant is not None:
            largest = max(self.config.ks)
            reciprocal = 0.0
            for found, wanted in zip(hits, relevant, strict=True):
                rank = next((i for i, d in enumerate(list(found)[:largest]) if d in set(wanted)), None)
                reciprocal += 0.0 if rank is None else 1 / (rank + 1)
            out["mrr"] = reciprocal / n
        return out
