"""Figures: matplotlib, imported only when drawing, saved atomically as PNG.

Figures are made with the object-oriented API (``matplotlib.figure.Figure`` rendered by the Agg
canvas), never pyplot: no global figure registry to leak into, no backend selection, safe from any
thread, and a third less import time. :func:`prewarm` imports it on a background thread while a run
trains (mostly C code that releases the GIL), so the drawing at the end is cheap.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from hookforge.fileio import atomic_write_bytes


def new_figure(width: float = 6.4, height: float = 4.0) -> Any:
    """A Figure with the Agg canvas attached (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def prewarm() -> threading.Thread:
    """Import matplotlib's figure and Agg modules on a daemon thread (a later import in the main
    thread waits for it through the import lock, so this is always safe)."""
    def load() -> None:
        try:
            import matplotlib.backends.backend_agg
            import matplotlib.figure  # noqa: F401
        except Exception:  # matplotlib missing or broken: drawing will say so later
            pass

    thread = threading.Thread(target=load, name="hookforge-figures-import", daemon=True)
    thread.start()
    return thread


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    buffer = io.BytesIO()
    # zlib level 1: a third faster than the default 6 for a few percent larger plots
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_metric_series(rows: list[dict[str, Any]], directory: Path, title: str) -> list[Path]:
    """One PNG per metric name (``metric_<name>.png``), one line per split, x = step."""
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for row in rows:
        steps, values = series.setdefault(row["name"], {}).setdefault(row["split"], ([], []))
        steps.append(row["step"])
        values.append(row["value"])
    written = []
    for name, by_split in sorted(series.items()):
        if all(len(set(steps)) < 2 for steps, _ in by_split.values()):
            continue  # a single final value is a number, not a curve (see evaluation.json)
        fig = new_figure(6.4, 4)
        ax = fig.add_subplot()
        for split, (steps, values) in sorted(by_split.items()):
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3,
                    label=split)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.subplots_adjust(left=0.13, right=0.97, top=0.92, bottom=0.12)  # tight_layout costs 30 ms
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        written.append(save_figure(fig, directory / f"metric_{safe}.png"))
    return written


def plot_confusion_matrix(matrix: Any, classes: list[str], title: str, path: Path) -> Path:
    """Counts of true (rows) against predicted (columns) labels, one annotated cell each.

    Drawn here rather than with scikit-learn's ConfusionMatrixDisplay, which imports
    sklearn.metrics and pyplot (~0.1 s at the end of every run) to make the same picture."""
    import numpy as np

    matrix = np.asarray(matrix)
    k = len(classes)
    size = min(4 + 0.45 * k, 14)
    fig = new_figure(size, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, interpolation="nearest", cmap="viridis")
    if k <= 30:  # beyond that the numbers would not be readable
        dark, light = image.cmap(0.0), image.cmap(1.0)
        threshold = (matrix.max() + matrix.min()) / 2.0
        for (row, col), count in np.ndenumerate(matrix):
            ax.text(col, row, f"{count:d}", ha="center", va="center",
                    color=light if count < threshold else dark)
    ax.set(xticks=range(k), yticks=range(k), xticklabels=classes, yticklabels=classes,
           xlabel="Predicted label", ylabel="True label", title=title)
    ax.set_ylim(k - 0.5, -0.5)
    if k * max((len(c) for c in classes), default=0) > 40:  # labels that would overlap
        for label in ax.get_xticklabels():
            label.set_rotation(45)
            label.set_horizontalalignment("right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_label_confusions(matrices: Any, labels: list[str], title: str, path: Path) -> Path:
    """Multi-label: one small 2x2 confusion matrix per label (true no/yes against predicted
    no/yes), in a grid of up to 24 labels."""
    import math

    shown = list(zip(labels, matrices, strict=True))[:24]
    cols = min(4, len(shown)) or 1
    rows = math.ceil(len(shown) / cols) or 1
    fig = new_figure(2.4 * cols, 2.4 * rows + 0.4)
    for i, (label, matrix) in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(matrix, interpolation="nearest", cmap="viridis")
        threshold = (matrix.max() + matrix.min()) / 2.0
        for (r, c), count in [((r, c), int(matrix[r][c])) for r in range(2) for c in range(2)]:
            ax.text(c, r, str(count), ha="center", va="center",
                    color="white" if count < threshold else "black", fontsize=8)
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["no", "yes"], yticklabels=["no", "yes"])
        ax.set_title(label[:24], fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


# -- presets and families -------------------------------------------------------------------------
# A figure family is a kind of plot (loss curves, reconstructions, a latent-space projection...).
# ``run.plots`` (a preset) says which families are drawn; ``run.plot_families.<family>`` switches
# one on or off and sets how often it is drawn while training. The core draws ``losses`` and
# ``metrics``; a component adds its own by listing them in a ``plot_families`` class attribute
# (family -> the lowest preset that draws it), which ``hookforge plugins show`` prints and the
# run checks names against.
PRESET_LEVELS = {"minimal": 0, "standard": 1, "full": 2}
CORE_FAMILIES = {"losses": "minimal", "metrics": "standard"}
FULL_EVERY_N_EPOCHS = 5  # the full preset's default cadence while training


def known_families(run: Any) -> dict[str, str]:
    """Every family the run's components draw: name -> the lowest preset that draws it."""
    families = dict(CORE_FAMILIES)
    for component in (getattr(run, "data", None), getattr(run, "model", None),
                      getattr(run, "loop", None), *getattr(run, "evaluators", ())):
        families.update(getattr(type(component), "plot_families", None) or {})
    return families


def check_families(run: Any) -> None:
    """``run.plot_families`` names only families this run can draw (a typo fails at once)."""
    from hookforge.errors import ConfigError, did_you_mean

    known = known_families(run)
    for name in run.config.run.plot_families:
        if name not in known:
            raise ConfigError(f"run.plot_families: unknown figure family '{name}'"
                              f"{did_you_mean(name, known)}; this run draws: "
                              f"{', '.join(sorted(known))}")


def family_due(run: Any, family: str, *, epoch: int | None = None) -> bool:
    """Whether ``family`` is drawn now: at the end (``epoch`` None) or after epoch ``epoch``
    (0-based) while training."""
    if not getattr(run, "figures", False) or getattr(run, "record", None) is None:
        return False
    section = run.config.run
    choice = section.plot_families.get(family)
    lowest = known_families(run).get(family, "standard")
    enabled = choice.enabled if choice is not None and choice.enabled is not None \
        else PRESET_LEVELS[section.plots] >= PRESET_LEVELS[lowest]
    if not enabled:
        return False
    if epoch is None:
        return True
    every = choice.every_n_epochs if choice is not None and choice.every_n_epochs else None
    if every is None:
        every = FULL_EVERY_N_EPOCHS if section.plots == "full" else None
    return every is not None and (epoch + 1) % every == 0


def family_path(run: Any, family: str, moment: str, epoch: int | None) -> Path:
    """``figures/<family>-<moment>-e<epoch>.png`` (e.g. recon-epoch_end-e019.png; the end of
    training without an epoch: recon-run_end.png)."""
    suffix = f"-e{epoch:03d}" if epoch is not None else ""
    return Path(run.figures_dir) / f"{family}-{moment}{suffix}.png"


_drawing_lock = threading.Lock()
_drawing: list[threading.Thread] = []


def draw_in_background(draw: Any, *args: Any) -> None:
    """Draw a figure on a worker thread (matplotlib's Agg rendering is C code that releases the
    GIL for much of its time), so training goes on; :func:`wait_for_drawing` joins them. The
    arguments must be copies the training will not change."""
    import logging

    def run() -> None:
        try:
            draw(*args)
        except Exception as exc:  # a figure never fails a run
            logging.getLogger("hookforge").warning("could not draw a figure: %s", exc)

    with _drawing_lock:
        previous = list(_drawing)
        _drawing[:] = [t for t in previous if t.is_alive()]
        thread = threading.Thread(target=run, name="hookforge-figure", daemon=True)
        _drawing.append(thread)
    thread.start()


def wait_for_drawing() -> None:
    """Join every figure thread (before the run reports its figures as artifacts)."""
    with _drawing_lock:
        threads = list(_drawing)
        _drawing.clear()
    for thread in threads:
        thread.join()
