"""Models that fail on purpose, for the run-lifecycle tests."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from majority import Majority


class Crashing(Majority):
    """Raises an unexpected error in the middle of fitting."""

    def fit(self, run: Any, dataset: Any) -> None:
        run.log_metrics({"loss": 1.0}, step=1, epoch=0)
        raise RuntimeError("kaboom inside the model")


class Interrupting(Majority):
    """The first attempt receives Ctrl-C (SIGINT) while fitting; a resumed run trains normally."""

    def fit(self, run: Any, dataset: Any) -> None:
        if not run.resumed:
            run.log_metrics({"loss": 1.0}, step=1, epoch=0)
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                # started from a background job of a non-interactive shell, which ignores
                # SIGINT (so Python installs no handler): Ctrl-C as a terminal would deliver it
                signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        super().fit(run, dataset)


class DiskFull(Majority):
    """Trains, then finds the disk full when its checkpoint is written."""

    def save(self, directory: Any) -> None:
        import errno

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "model.json"))
