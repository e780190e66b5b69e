"""Exception types. A :class:`UsageError` (or subclass) is a problem with what the user gave us:
the CLI prints its one-line message and exits with code 2, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HookforgeError(Exception):
    """Base class of every error hookforge raises on purpose."""


class UsageError(HookforgeError):
    """Bad usage, config or input data (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration is invalid: unknown key, wrong type, value out of range..."""


class PluginError(UsageError):
    """A plugin name is unknown, disabled or broken."""


class DataError(UsageError):
    """The input data is missing, empty or not of the expected shape or type."""


class CheckpointError(UsageError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class RunInterrupted(HookforgeError):
    """Raised when the run was interrupted (SIGINT/SIGTERM); the run is marked interrupted."""

    exit_code = 130


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
