"""The contract of a task family.

A family turns (a seeded random generator, a difficulty in [0, 1]) into an :class:`Instance`: a
prompt, a reference answer (the completion supervised fine-tuning learns) and the data its
verifier needs, which must be JSON (it is written to the run's data files and read back by the
evaluator). :meth:`Task.verify` scores an answer in [0, 1]. Verifiers that run code a model wrote
do it through :mod:`hookforge_lm.sandbox`, never in the calling process.

A package adds a family by registering a class like these under ``hookforge.tasks``::

    [project.entry-points."hookforge.tasks"]
    parity = "my_package:Parity"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from hookforge.components import ComponentConfig

INTEGER = re.compile(r"\s*(-?\d+)")


class TaskOptions(ComponentConfig):
    """Options every family has (a family's Config extends this)."""

    weight: float = Field(1.0, gt=0, description="share of this family in the mixed data")


@dataclass
class Instance:
    prompt: str
    answer: str
    data: dict[str, Any]
    difficulty: float = 0.0


class Task:
    """One family of verifiable problems (see the module docstring)."""

    Config: ClassVar[type[TaskOptions]] = TaskOptions
    plugin_name: ClassVar[str] = ""

    def __init__(self, options: TaskOptions | None = None) -> None:
        self.options = options if options is not None else self.Config()

    def generate(self, rng: Any, difficulty: float) -> Instance:
        """A new instance; ``rng`` is a ``numpy.random.Generator`` (the only randomness used)."""
        raise NotImplementedError

    def verify(self, data: dict[str, Any], answer: str) -> float:
        """The score of ``answer`` for the instance with ``data``: 1 right, 0 wrong, between for
        partial credit."""
        raise NotImplementedError


def scale(low: int, high: int, difficulty: float) -> int:
    """The integer between ``low`` and ``high`` that ``difficulty`` (0..1) stands for."""
    return low + round(min(max(difficulty, 0.0), 1.0) * (high - low))


def leading_integer(answer: str) -> int | None:
    """The integer an answer starts with (``" 42 because..."`` -> 42), or None."""
    match = INTEGER.match(answer)
    if match is None or len(match.group(1)) > 64:  # no number, or one no task would ask for
        return None
    return int(match.group(1))
