"""The ``reconstruction`` evaluator: how well an autoencoder reconstructs, how it uses its codes,
and how well its reconstruction error detects anomalies.

MSE and MAE (in the scaled space the model trains in), each feature's MSE (a list in
evaluation.json; its max and mean as metrics); for a ``vq`` latent, the perplexity of the code
distribution and the fraction of codes used; when the rows have labels and the data source held
classes out of training (``data.exclude_classes_from_train``), the AUROC of the reconstruction
error as an anomaly score for those classes against the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from hookforge.components import ComponentConfig, Evaluator
from hookforge.markers import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions


class ReconstructionEvaluator(Evaluator):
    """Reconstruction error, code usage and anomaly AUROC; and the autoencoder's figures."""

    tasks = ("reconstruction",)
    # figure families (hookforge_autoencoder.figures) and the lowest run.plots preset drawing each
    plot_families: ClassVar[dict[str, str]] = {"recon": "standard", "latent": "standard",
                                               "codebook": "standard", "anomaly": "standard"}

    class Config(ComponentConfig):
        pass

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._validated: Predictions | None = None  # the latest validation, for epoch figures
        self._perplexities: list[tuple[int, float]] = []

    @hookimpl
    def hookforge_after_epoch(self, run: Run, result: Any) -> None:
        predictions, self._validated = self._validated, None
        if "val/perplexity" in result.metrics:
            self._perplexities.append((result.epoch, result.metrics["val/perplexity"]))
        if predictions is not None:
            self._draw(run, predictions, "val", "epoch_end", result.epoch)

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
        if final:
            self._draw(run, predictions, split, f"final_{split}", None)
        else:
            self._validated = predictions
        return out

    def _draw(self, run: Run, predictions: Any, split: str, moment: str,
              epoch: int | None) -> None:
        """The due families, on the core's figure threads (copies of small arrays only)."""
        import numpy as np

        from hookforge.figures import draw_in_background, family_due, family_path
        from hookforge_autoencoder import figures

        title = f"{run.name} {split}" + (f" epoch {epoch + 1}" if epoch is not None else "")
        labels = getattr(predictions, "labels", None)
        if labels is None:
            labels = predictions.y_true
        if family_due(run, "recon", epoch=epoch) and predictions.examples is not None:
            originals, rebuilt, masks = predictions.examples
            draw_in_background(figures.draw_reconstructions, originals, rebuilt,
                               predictions.input_shape or [originals[0].size], masks,
                               f"{title}: reconstructions",
                               family_path(run, "recon", moment, epoch))
        if family_due(run, "latent", epoch=epoch) and predictions.latents is not None:
            classes = run.dataset_info.classes if run.dataset_info else None
            draw_in_background(figures.draw_latents, predictions.latents[:2000].copy(),
                               None if labels is None else np.asarray(labels)[:2000].copy(),
                               classes, f"{title}: latent space (PCA)",
                               family_path(run, "latent", moment, epoch))
        codes = getattr(predictions, "codes", None)
        if family_due(run, "codebook", epoch=epoch) and codes is not None:
            draw_in_background(figures.draw_codebook, np.asarray(codes).copy(),
                               predictions.codebook_size, self._history(run),
                               f"{title}: codebook", family_path(run, "codebook", moment, epoch))
        positive = _held_out(run, labels)
        if family_due(run, "anomaly", epoch=epoch) and positive is not None:
            draw_in_background(figures.draw_anomaly, np.asarray(predictions.y_pred).copy(),
                               positive, f"{title}: anomaly score",
                               family_path(run, "anomaly", moment, epoch))

    def _history(self, run: Run) -> list[tuple[int, float]]:
        """Perplexity per epoch: this process's, or the record's after a resume."""
        if run.resumed and run.record is not None:
            return [(row["epoch"], row["value"]) for row in run.record.read_metrics()
                    if row["name"] == "perplexity" and row["split"] == "val"
                    and row.get("epoch") is not None]
        return list(self._perplexities)


def _held_out(run: Run, labels: Any) -> Any:
    """Which rows belong to the classes held out of training (None: none were)."""
    import numpy as np

    data = getattr(run.config, "data", None)
    held_out = getattr(getattr(data, "options", None), "exclude_classes_from_train", None) or []
    info = run.dataset_info
    if labels is None or not held_out or info is None or not info.classes:
        return None
    wanted = {str(c) for c in held_out}
    anomalous = [i for i, c in enumerate(info.classes) if str(c) in wanted]
    return np.isin(np.asarray(labels), anomalous)


def _anomaly_auroc(run: Run, scores: Any, labels: Any) -> float | None:
    """AUROC of ``scores`` for the held-out classes (positives) against the rest."""
    import numpy as np

    from hookforge.builtins.evaluators.classification import _binary_auroc

    positive = _held_out(run, labels)
    return None if positive is None else _binary_auroc(positive, np.asarray(scores))
