"""The ``reconstruction`` evaluator: how well an autoencoder reconstructs, how it uses its codes,
and how well its reconstruction error detects anomalies.

MSE and MAE (in the scaled space the model trains in), each feature's MSE (a list in
evaluation.json; its max and mean as metrics); for a ``vq`` latent, the perplexity of the code
distribution and the fraction of codes used; when the rows have labels and the data source held
classes out of training (``data.exclude_classes_from_train``), the AUROC of the reconstruction
error as an anomaly score for those classes against the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class ReconstructionEvaluator(Evaluator):
    """Reconstruction error, code usage and anomaly AUROC."""

    tasks = ("reconstruction",)

    class Config(ComponentConfig):
        pass

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, Any]:
        import numpy as np

        errors = np.asarray(predictions.y_pred, dtype=np.float64)
        if len(errors) == 0:
            return {}
        out: dict[str, Any] = {"mse": float(errors.mean()),
                               "mae": float(np.mean(predictions.abs_errors))}
        features = getattr(predictions, "feature_errors", None)
        if features is not None:
            out["max_feature_mse"] = float(np.max(features))
            if final:
                out["feature_mse"] = [float(v) for v in features]
        codes = getattr(predictions, "codes", None)
        if codes is not None and predictions.codebook_size:
            counts = np.bincount(np.asarray(codes).ravel(), minlength=predictions.codebook_size)
            p = counts / counts.sum()
            nonzero = p[p > 0]
            out["perplexity"] = float(np.exp(-(nonzero * np.log(nonzero)).sum()))
            out["code_usage"] = float((counts > 0).mean())
        labels = getattr(predictions, "labels", None)
        if labels is None:  # predicted from inputs alone: the run gives the split's labels
            labels = predictions.y_true
        auroc = _anomaly_auroc(run, errors, labels)
        if auroc is not None:
            out["anomaly_auroc"] = auroc
        return out


def _anomaly_auroc(run: Run, scores: Any, labels: Any) -> float | None:
    """AUROC of ``scores`` for the held-out classes (positives) against the rest."""
    import numpy as np

    from hookforge.builtins.evaluators.classification import _binary_auroc

    data = getattr(run.config, "data", None)
    held_out = getattr(getattr(data, "options", None), "exclude_classes_from_train", None) or []
    info = run.dataset_info
    if labels is None or not held_out or info is None or not info.classes:
        return None
    wanted = {str(c) for c in held_out}
    anomalous = [i for i, c in enumerate(info.classes) if str(c) in wanted]
    positive = np.isin(np.asarray(labels), anomalous)
    return _binary_auroc(positive, np.asarray(scores))
