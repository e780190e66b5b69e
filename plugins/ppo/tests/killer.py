"""A hook-only test plugin that kills its own process at the end of a chosen PPO iteration:
HOOKFORGE_TEST_KILL_ITERATION="<iteration>:<SIGKILL|SIGINT>" (the first attempt only)."""

from __future__ import annotations

import os
import signal

from hookforge import hookimpl


class IterationKiller:
    def __init__(self) -> None:
        spec = os.environ.get("HOOKFORGE_TEST_KILL_ITERATION", "")
        iteration, _, name = spec.partition(":")
        self.iteration = int(iteration) if iteration else None
        self.signal = getattr(signal, name or "SIGKILL")

    @hookimpl
    def hookforge_after_epoch(self, run, result):
        if self.iteration is not None and not run.resumed and result.epoch == self.iteration:
            os.kill(os.getpid(), self.signal)
