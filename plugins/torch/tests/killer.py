"""A hook-only test plugin that stops its own process at a chosen step, the way a crash or a
Ctrl-C would: HOOKFORGE_TEST_KILL="<step>:<SIGKILL|SIGINT>"."""

from __future__ import annotations

import os
import signal

from hookforge import hookimpl


class Killer:
    def __init__(self) -> None:
        spec = os.environ.get("HOOKFORGE_TEST_KILL", "")
        step, _, name = spec.partition(":")
        self.step = int(step) if step else None
        self.signal = getattr(signal, name or "SIGKILL")
        self.fired = False

    @hookimpl
    def hookforge_after_step(self, run, result):
        if self.step is not None and not run.resumed and not self.fired and result.step >= self.step:
            self.fired = True
            os.kill(os.getpid(), self.signal)
