"""The ``classification`` evaluator: accuracy; precision, recall and F1 (macro, micro, weighted);
F1 per class; F-beta for a chosen ``beta``; macro AUROC and log loss when the model gives scores;
the confusion matrix and its PNG.
Multi-label predictions (one column per label) get the multi-label versions of the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class ClassificationEvaluator(Evaluator):
    """Classification metrics (scikit-learn's definitions; see the helpers below)."""

    tasks = ("classification", "multilabel")

    class Config(ComponentConfig):
        per_class: bool = Field(True, description="report F1 of every class (f1_class_<label>)")
        confusion_matrix: bool = Field(True, description="store the matrix and draw its PNG")
        beta: float | None = Field(None, gt=0, description=(
            "also report F-beta (fbeta_macro, fbeta_weighted, fbeta_class_<label>; e.g. 0.5 "
            "weighs precision higher)"))

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, Any]:
        import numpy as np

        y_true = np.asarray(predictions.y_true)
        y_pred = np.asarray(predictions.y_pred)
        if y_true.ndim == 2:
            return self._multilabel(run, split, y_true, y_pred, predictions, final)
        classes = predictions.classes or sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        labels = list(range(len(classes))) if predictions.classes else classes
        true_index, pred_index = _label_indices(y_true, labels), _label_indices(y_pred, labels)
        matrix = _confusion(true_index, pred_index, len(labels))
        accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
        out: dict[str, Any] = {"accuracy": accuracy}
        tp = np.diag(matrix).astype(np.float64)
        support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        p, r = _ratio(tp, predicted), _ratio(tp, support)
        f = _ratio(2 * tp, support + predicted)  # sklearn's F1 from counts, 0 where undefined
        weights = support / support.sum() if support.sum() else np.zeros(len(labels))
        for name, values in (("precision", p), ("recall", r), ("f1", f)):
            out[f"{name}_macro"] = float(np.mean(values))
            out[f"{name}_micro"] = accuracy  # equal for single-label data
            out[f"{name}_weighted"] = float(np.sum(values * weights))
        if self.config.per_class:
            out.update({f"f1_class_{c}": float(v) for c, v in zip(classes, f, strict=True)})
        if self.config.beta is not None:
            b2 = self.config.beta ** 2
            fbeta = _ratio((1 + b2) * tp, b2 * support + predicted)
            out["fbeta_macro"] = float(np.mean(fbeta))
            out["fbeta_weighted"] = float(np.sum(fbeta * weights))
            if self.config.per_class:
                out.update({f"fbeta_class_{c}": float(v) for c, v in zip(classes, fbeta, strict=True)})
        scores = None if predictions.scores is None else np.asarray(predictions.scores, np.float64)
        auroc = _macro_auroc(true_index, scores, len(labels))
        if auroc is not None:
            out["auroc_macro"] = auroc
        if scores is not None and predictions.classes and scores.ndim == 2 \
                and scores.shape[1] == len(labels) and (true_index >= 0).all():
            out["log_loss"] = _log_loss(true_index, scores)
        if self.config.confusion_matrix:
            out["confusion_matrix"] = matrix.tolist()
            if final and getattr(run, "figures", True):
                _draw_confusion(run, split, matrix, classes)
        return out

    def _multilabel(self, run: Run, split: str, y_true: Any, y_pred: Any,
                    predictions: Predictions, final: bool) -> dict[str, Any]:
        import numpy as np
        from sklearn import metrics as skm

        names = predictions.classes or [str(i) for i in range(y_true.shape[1])]
        exact = float(skm.accuracy_score(y_true, y_pred))
        truth, guess = y_true.astype(bool), y_pred.astype(bool)
        overlap = (truth & guess).any(axis=1)
        # partial match: at least one true label predicted (both empty counts as a match)
        partial = overlap | (~truth.any(axis=1) & ~guess.any(axis=1))
        out: dict[str, Any] = {"accuracy": exact, "exact_match": exact,
                               "partial_match": float(partial.mean()) if len(partial) else 0.0,
                               "jaccard_samples": float(skm.jaccard_score(y_true, y_pred,
                                                                          average="samples",
                                                                          zero_division=1)),
                               "hamming_loss": float(skm.hamming_loss(y_true, y_pred))}
        for average in ("macro", "micro", "weighted", "samples"):
            p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                             zero_division=0)
            out.update({f"precision_{average}": float(p), f"recall_{average}": float(r),
                        f"f1_{average}": float(f)})
        if self.config.per_class:
            per_label = skm.f1_score(y_true, y_pred, average=None, zero_division=0)
            out.update({f"f1_class_{c}": float(v) for c, v in zip(names, per_label, strict=True)})
        if predictions.scores is not None:
            present = [i for i in range(y_true.shape[1]) if 0 < y_true[:, i].sum() < len(y_true)]
            if present:
                out["auroc_macro"] = float(skm.roc_auc_score(y_true[:, present],
                                                             predictions.scores[:, present],
                                                             average="macro"))
        if self.config.confusion_matrix:
            # one 2x2 matrix per label (rows: true no/yes, columns: predicted no/yes)
            matrices = np.stack([skm.confusion_matrix(truth[:, i], guess[:, i], labels=[False, True])
                                 for i in range(truth.shape[1])])
            out["confusion_matrix_per_label"] = {str(n): m.tolist() for n, m in zip(names, matrices,
                                                                                    strict=True)}
            if final and getattr(run, "figures", True):
                from hookforge.figures import plot_label_confusions

                plot_label_confusions(matrices, [str(n) for n in names],
                                      f"{run.name}: confusion per label ({split})",
                                      run.figures_dir / f"confusion_matrix_{split}.png")
        return out


# The single-label metrics are computed here from one confusion matrix, with the formulas of
# scikit-learn's precision_recall_fscore_support, roc_auc_score and log_loss (a test checks they
# agree). sklearn validates its inputs on every call, about 1 ms each: 4 ms per evaluation, which
# a loop that scores every epoch and a search that runs hundreds of small trials pay many times.


def _label_indices(values: Any, labels: list[Any]) -> Any:
    """Position of each value in ``labels`` (-1 for a value that is not a label)."""
    import numpy as np

    if labels == list(range(len(labels))) and values.dtype.kind in "iu":
        return np.where((values >= 0) & (values < len(labels)), values, -1).astype(np.int64)
    lookup = {label: i for i, label in enumerate(labels)}
    return np.fromiter((lookup.get(v, -1) for v in values.tolist()), np.int64, len(values))


def _confusion(true_index: Any, pred_index: Any, k: int) -> Any:
    """Rows: true label, columns: predicted (samples outside the labels are left out)."""
    import numpy as np

    keep = (true_index >= 0) & (pred_index >= 0)
    cells = np.bincount(true_index[keep] * k + pred_index[keep], minlength=k * k)
    return cells.reshape(k, k)


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    import numpy as np

    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=np.asarray(denominator) > 0)


def _binary_auroc(positive: Any, scores: Any) -> float | None:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half), which is
    what roc_auc_score's trapezoidal area equals. None when one of the two classes is absent."""
    import numpy as np

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each value
    rank_sum = float(mean_rank[inverse.ravel()][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _macro_auroc(true_index: Any, scores: Any, k: int) -> float | None:
    """Macro one-vs-rest AUROC over the classes present in the labels (None when undefined)."""
    import numpy as np

    known = true_index >= 0
    if scores is None or len(np.unique(true_index[known])) < 2:
        return None
    if not np.isfinite(scores).all():  # a diverged model: say so rather than rank NaNs
        return float("nan")
    true_index = true_index[known]
    scores = scores[known]
    if scores.ndim == 1 or scores.shape[1] == 1:
        return _binary_auroc(true_index == 1, scores.ravel())
    if scores.shape[1] != k:
        return None
    if k == 2:
        return _binary_auroc(true_index == 1, scores[:, 1])
    aucs = [_binary_auroc(true_index == i, scores[:, i]) for i in range(k)]
    present = [a for a in aucs if a is not None]
    return float(np.mean(present)) if present else None


def _log_loss(true_index: Any, scores: Any) -> float:
    """Mean negative log-probability of the true class, probabilities renormalised (float32
    outputs of boosting libraries sum to 1 only approximately) and clipped as sklearn does."""
    import numpy as np

    if not np.isfinite(scores).all():
        return float("nan")
    probabilities = scores / np.clip(scores.sum(axis=1, keepdims=True), 1e-12, None)
    eps = np.finfo(probabilities.dtype).eps
    chosen = np.clip(probabilities[np.arange(len(true_index)), true_index], eps, 1 - eps)
    return float(-np.mean(np.log(chosen)))


def _draw_confusion(run: Run, split: str, matrix: Any, classes: list[Any]) -> None:
    from hookforge.figures import plot_confusion_matrix

    plot_confusion_matrix(matrix, [str(c) for c in classes], f"{run.name}: confusion matrix ({split})",
                          run.figures_dir / f"confusion_matrix_{split}.png")
