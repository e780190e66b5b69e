"""Progress display for long work: a rich progress bar on a terminal, nothing otherwise.

Loops call ``bar.advance(n, loss=...)`` every few steps, not every step; rich redraws from its own
thread, so an update costs a few microseconds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Quiet:
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass


class _RichBar:
    def __init__(self, progress: Any, task: int) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields: Any) -> None:
        status = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in fields.items())
        self._progress.update(self._task, advance=n, status=status)


def enabled(run: Any) -> bool:
    import os

    if not getattr(run, "primary", True):  # one bar per distributed run, on rank 0
        return False
    if os.environ.get("HOOKFORGE_PROGRESS") in ("0", "1"):
        return os.environ["HOOKFORGE_PROGRESS"] == "1"
    return bool(getattr(run.config.run, "progress", True)) and sys.stderr.isatty()


@contextmanager
def progress_bar(run: Any, total: int | None, description: str) -> Iterator[Any]:
    """A bar with description, completion, elapsed, ETA and a status text of running values."""
    if not enabled(run):
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                  TextColumn("{task.fields[status]}"), console=Console(stderr=True),
                  transient=False, refresh_per_second=4) as progress:
        yield _RichBar(progress, progress.add_task(description, total=total, status=""))
