"""A hook-only test plugin that stops its own process at a chosen step, the way a crash or a
Ctrl-C would: HOOKFORGE_TEST_KILL="<step>:<SIGKILL|SIGINT>"; ``artifact`` for a step kills the
first attempt when the run's end logs its first artifact (after the final evaluation)."""

from __future__ import annotations

import os
import signal

from hookforge import hookimpl


class Killer:
    def __init__(self) -> None:
        spec = os.environ.get("HOOKFORGE_TEST_KILL", "")
        step, _, name = spec.partition(":")
        self.at_artifact = step == "artifact"
        self.step = int(step) if step and not self.at_artifact else None
        self.signal = getattr(signal, name or "SIGKILL")
        self.fired = False

    @hookimpl
    def hookforge_after_step(self, run, result):
        if self.step is not None and not run.resumed and not self.fired and result.step >= self.step:
            self.fired = True
            os.kill(os.getpid(), self.signal)

    @hookimpl
    def hookforge_log_artifact(self, run, path, kind):
        if self.at_artifact and not run.resumed and not self.fired:
            self.fired = True
            os.kill(os.getpid(), self.signal)
