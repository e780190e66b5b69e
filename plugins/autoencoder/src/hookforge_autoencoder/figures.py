"""The autoencoder's figure families, drawn by the ``reconstruction`` evaluator through the
core's presets (``run.plots``, ``run.plot_families``) and its background drawing:

- ``recon``: originals beside their reconstructions (images as images, sets of points as
  scatter plots of two features, anything else as a profile of its values);
- ``latent``: a 2-D PCA of the latents, coloured by label;
- ``codebook`` (``vq``): how often each code is used, and the perplexity over epochs;
- ``anomaly``: the reconstruction error of the held-out classes against the others, with the ROC.

Every function takes plain numpy arrays (copies), so it is safe on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookforge.figures import new_figure, save_figure


def draw_reconstructions(originals: Any, reconstructions: Any, shape: list[int],
                         masks: Any, title: str, path: Path) -> Path:
    import numpy as np

    count = len(originals)
    fig = new_figure(1.6 * max(count, 2), 3.4)
    for i in range(count):
        original, rebuilt = np.asarray(originals[i]), np.asarray(reconstructions[i])
        for row, (values, label) in enumerate(((original, "input"), (rebuilt, "output"))):
            ax = fig.add_subplot(2, count, row * count + i + 1)
            if len(shape) == 3:  # an image: its first channel
                ax.imshow(values.reshape(shape)[0], cmap="gray_r")
            elif len(shape) == 2:  # a set of points: the last two features
                points = values.reshape(shape)
                real = masks[i].astype(bool) if masks is not None and row == 0 else slice(None)
                ax.scatter(points[real, -2], points[real, -1], s=6,
                           c="tab:blue" if row == 0 else "tab:orange")
            else:
                ax.plot(values.reshape(-1), linewidth=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label)
    fig.suptitle(title)
    return save_figure(fig, path)


def draw_latents(latents: Any, labels: Any, classes: list[Any] | None, title: str,
                 path: Path) -> Path:
    """The latents projected on their two first principal components (numpy's SVD)."""
    import numpy as np

    z = np.asarray(latents, dtype=np.float64)
    z = z - z.mean(axis=0)
    if z.shape[1] >= 2:
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        projected = z @ vt[:2].T
    else:
        projected = np.column_stack([z[:, 0], np.zeros(len(z))])
    fig = new_figure(5.5, 4.5)
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(projected[:, 0], projected[:, 1], s=5)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            chosen = labels == value
            name = classes[int(value)] if classes and 0 <= int(value) < len(classes) else value
            ax.scatter(projected[chosen, 0], projected[chosen, 1], s=5, label=str(name))
        ax.legend(markerscale=2, fontsize=7, loc="best")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    return save_figure(fig, path)


def draw_codebook(codes: Any, codebook_size: int, perplexities: list[tuple[int, float]],
                  title: str, path: Path) -> Path:
    import numpy as np

    counts = np.bincount(np.asarray(codes).ravel(), minlength=codebook_size)
    fig = new_figure(9, 3.6)
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(np.arange(codebook_size), counts, width=1.0)
    ax.set_xlabel("code")
    ax.set_ylabel("uses")
    ax.set_title(f"{(counts > 0).mean():.0%} of {codebook_size} codes used")
    ax = fig.add_subplot(1, 2, 2)
    if perplexities:
        epochs, values = zip(*perplexities, strict=True)
        ax.plot(epochs, values, marker="o", markersize=3)
    ax.axhline(codebook_size, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    fig.suptitle(title)
    return save_figure(fig, path)


def draw_anomaly(scores: Any, positive: Any, title: str, path: Path) -> Path:
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    scores, positive = np.asarray(scores), np.asarray(positive, dtype=bool)
    fig = new_figure(9, 3.6)
    ax = fig.add_subplot(1, 2, 1)
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[~positive], bins=bins, alpha=0.6, density=True, label="trained classes")
    ax.hist(scores[positive], bins=bins, alpha=0.6, density=True, label="held out")
    ax.set_xlabel("reconstruction error")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    if positive.any() and (~positive).any():
        fpr, tpr, _ = roc_curve(positive, scores)
        ax.plot(fpr, tpr, label=f"AUROC {roc_auc_score(positive, scores):.3f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    fig.suptitle(title)
    return save_figure(fig, path)
