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
    """Classification metrics from scikit-learn."""

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
        from sklearn import metrics as skm

        y_true = np.asarray(predictions.y_true)
        y_pred = np.asarray(predictions.y_pred)
        if y_true.ndim == 2:
            return self._multilabel(y_true, y_pred, predictions)
        classes = predictions.classes or sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        labels = list(range(len(classes))) if predictions.classes else classes
        accuracy = float(skm.accuracy_score(y_true, y_pred))
        out: dict[str, Any] = {"accuracy": accuracy}
        # One sklearn call for the per-class values; the averages follow from them (macro: mean,
        # weighted: support-weighted mean, micro: equal to accuracy for single-label data). This is
        # what sklearn computes for each `average`, without recounting the matrix four times.
        p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                               average=None, zero_division=0)
        weights = support / support.sum() if support.sum() else np.zeros_like(support, dtype=float)
        for name, values in (("precision", p), ("recall", r), ("f1", f)):
            out[f"{name}_macro"] = float(np.mean(values))
            out[f"{name}_micro"] = accuracy
            out[f"{name}_weighted"] = float(np.sum(values * weights))
        if self.config.per_class:
            out.update({f"f1_class_{c}": float(v) for c, v in zip(classes, f, strict=True)})
        if self.config.beta is not None:
            b2 = self.config.beta ** 2
            # F-beta from the same per-class precision and recall (sklearn's fbeta_score formula)
            denominator = b2 * p + r
            fbeta = np.divide((1 + b2) * p * r, denominator, out=np.zeros_like(p, dtype=float),
                              where=denominator > 0)
            out["fbeta_macro"] = float(np.mean(fbeta))
            out["fbeta_weighted"] = float(np.sum(fbeta * weights))
            if self.config.per_class:
                out.update({f"fbeta_class_{c}": float(v) for c, v in zip(classes, fbeta, strict=True)})
        auroc = _macro_auroc(y_true, predictions.scores, labels)
        if auroc is not None:
            out["auroc_macro"] = auroc
        if predictions.scores is not None and predictions.classes:
            scores = np.asarray(predictions.scores, dtype=np.float64)
            if scores.ndim == 2 and scores.shape[1] == len(labels):
                # float32 outputs of boosting libraries sum to 1 only approximately
                scores = scores / np.clip(scores.sum(axis=1, keepdims=True), 1e-12, None)
                out["log_loss"] = float(skm.log_loss(y_true, scores, labels=labels))
        if self.config.confusion_matrix:
            matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
            out["confusion_matrix"] = matrix.tolist()
            if final and getattr(run, "figures", True):
                _draw_confusion(run, split, matrix, classes)
        return out

    def _multilabel(self, y_true: Any, y_pred: Any, predictions: Predictions) -> dict[str, Any]:
        from sklearn import metrics as skm

        names = predictions.classes or [str(i) for i in range(y_true.shape[1])]
        out: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
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
        return out


def _macro_auroc(y_true: Any, scores: Any, labels: list[Any]) -> float | None:
    """Macro one-vs-rest AUROC over the classes present in ``y_true`` (None when undefined)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if scores is None or len(np.unique(y_true)) < 2:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1 or scores.shape[1] == 1:
        return float(roc_auc_score(y_true, scores.ravel()))
    if scores.shape[1] == 2:
        return float(roc_auc_score(y_true, scores[:, 1]))
    present = [i for i, label in enumerate(labels) if (y_true == label).any()]
    aucs = [roc_auc_score((y_true == labels[i]).astype(int), scores[:, i]) for i in present]
    return float(np.mean(aucs))


def _draw_confusion(run: Run, split: str, matrix: Any, classes: list[Any]) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    from hookforge.figures import new_figure, save_figure

    size = min(4 + 0.45 * len(classes), 14)
    fig = new_figure(size, size)
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(matrix, display_labels=[str(c) for c in classes]).plot(
        ax=ax, colorbar=False, values_format="d")
    ax.set_title(f"{run.name}: confusion matrix ({split})")
    fig.tight_layout()
    save_figure(fig, run.figures_dir / f"confusion_matrix_{split}.png")
