"""Figures: matplotlib (Agg backend, imported only when drawing) saved atomically as PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hookforge.fileio import atomic_write_bytes


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_metric_series(rows: list[dict[str, Any]], directory: Path, title: str) -> list[Path]:
    """One PNG per metric name (``metric_<name>.png``), one line per split, x = step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for row in rows:
        steps, values = series.setdefault(row["name"], {}).setdefault(row["split"], ([], []))
        steps.append(row["step"])
        values.append(row["value"])
    written = []
    for name, by_split in sorted(series.items()):
        if all(len(set(steps)) < 2 for steps, _ in by_split.values()):
            continue  # a single final value is a number, not a curve (see evaluation.json)
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for split, (steps, values) in sorted(by_split.items()):
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3,
                    label=split)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        written.append(save_figure(fig, directory / f"metric_{safe}.png"))
    return written
