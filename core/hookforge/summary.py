"""The final metrics of a run as a few compact lines (what ``hookforge train`` prints and
train.log keeps): one line of scalar metrics per split, per-class values grouped on their own
line, wrapped to 100 columns, matrices left to evaluation.json."""

from __future__ import annotations

import textwrap
from typing import Any

WIDTH = 100


def _format(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def evaluation_lines(evaluation: dict[str, dict[str, Any]], width: int = WIDTH) -> list[str]:
    """``val: accuracy=0.9667 f1_macro=0.9666 ...`` then ``  f1 per class: a=... b=...``."""
    lines: list[str] = []
    for split, metrics in evaluation.items():
        scalars: list[str] = []
        groups: dict[str, list[str]] = {}
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "n_samples":
                continue
            head, sep, label = key.partition("_class_")
            if sep:  # f1_class_setosa -> the "f1 per class" group
                groups.setdefault(head, []).append(f"{label}={_format(float(value))}")
            else:
                scalars.append(f"{key}={_format(float(value))}")
        n = metrics.get("n_samples")
        prefix = f"{split}" + (f" (n={int(n)})" if isinstance(n, (int, float)) else "") + ": "
        if scalars:
            lines += textwrap.wrap("  ".join(scalars), width, initial_indent=prefix,
                                   subsequent_indent=" " * len(prefix), break_on_hyphens=False)
        for head, items in groups.items():
            label = f"  {head} per class: "
            lines += textwrap.wrap("  ".join(items), width, initial_indent=label,
                                   subsequent_indent=" " * len(label), break_on_hyphens=False)
    return lines
