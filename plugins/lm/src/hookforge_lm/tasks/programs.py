"""Program families: ``abd`` (abduction: given a program and its output, find an input) and
``ded`` (deduction: given a statement and tests, write the program).

Both draw a straight-line integer program of 1 to ``max_ops`` steps (difficulty sets the length)
from a few operations (add, subtract, multiply, integer-divide, remainder, square). Every
answer is checked by running code in :mod:`hookforge_lm.sandbox`: for ``ded`` the program the
model wrote; for ``abd`` the generated program on the model's input (read as a Python literal,
never evaluated). The harness marks its result line with a nonce made at verify time, so a
program that prints its own "result" gains nothing.
"""

from __future__ import annotations

import ast
import json
import secrets
from typing import Any

from pydantic import Field, model_validator

from hookforge_lm.sandbox import Limits, run_python
from hookforge_lm.tasks.base import Instance, Task, TaskOptions, scale

# (source, words); k is a small constant drawn per step
OPERATIONS = {
    "add": ("x = x + {k}", "add {k}"),
    "sub": ("x = x - {k}", "subtract {k}"),
    "mul": ("x = x * {k}", "multiply by {k}"),
    "div": ("x = x // {k}", "divide by {k}, rounding down"),
    "mod": ("x = x % {k}", "take the remainder modulo {k}"),
    "square": ("x = x * x", "square it"),
}


class ProgramOptions(TaskOptions):
    min_ops: int = Field(1, ge=1, description="program steps at difficulty 0")
    max_ops: int = Field(3, ge=1, le=12, description="program steps at difficulty 1")
    operations: list[str] = Field(default_factory=lambda: ["add", "sub", "mul"],
                                  description=f"steps to draw from: {', '.join(OPERATIONS)}")
    max_input: int = Field(20, ge=1, description="inputs are drawn from 0..max_input")
    timeout_s: float = Field(2.0, gt=0, le=60, description="wall-clock limit of one check")
    memory_mb: int = Field(256, ge=64, description="address-space limit of one check")

    @model_validator(mode="after")
    def _known(self) -> ProgramOptions:
        from hookforge.errors import did_you_mean

        for name in self.operations:
            if name not in OPERATIONS:
                raise ValueError(f"unknown operation '{name}'{did_you_mean(name, OPERATIONS)}; "
                                 f"known: {', '.join(OPERATIONS)}")
        if self.min_ops > self.max_ops:
            raise ValueError(f"min_ops ({self.min_ops}) is above max_ops ({self.max_ops})")
        return self


def draw_program(options: ProgramOptions, rng: Any,
                 difficulty: float) -> tuple[str, str, list[tuple[str, int]]]:
    """(Python source of ``def f(x)``, the same steps in words, the steps)."""
    steps = []
    for _ in range(scale(options.min_ops, options.max_ops, difficulty)):
        steps.append((options.operations[int(rng.integers(len(options.operations)))],
                      int(rng.integers(2, 10))))
    lines = ["    " + OPERATIONS[name][0].format(k=k) for name, k in steps]
    words = [OPERATIONS[name][1].format(k=k) for name, k in steps]
    return "def f(x):\n" + "\n".join(lines) + "\n    return x\n", ", then ".join(words), steps


def apply_steps(steps: list[tuple[str, int]], x: int) -> int:
    """What the generated program returns for ``x``, computed here: the generator's own
    programs are data, not code, so making an instance starts no process."""
    for name, k in steps:
        x = (x + k if name == "add" else x - k if name == "sub" else x * k if name == "mul"
             else x // k if name == "div" else x % k if name == "mod" else x * x)
    return x


def run_cases(program: str, inputs: list[Any], options: ProgramOptions) -> tuple[list[Any] | None, str]:
    """f(x) for each input, computed in the sandbox (None for an input that raised), or None and
    why when the program does not run."""
    nonce = secrets.token_hex(8)
    harness = (f"\n\nimport json as _json\n_out = []\nfor _x in {inputs!r}:\n"
               f"    try:\n        _out.append(f(_x))\n    except Exception:\n        _out.append(None)\n"
               f"print('{nonce}', _json.dumps(_out))\n")
    result = run_python(program + harness, limits=Limits(wall_s=options.timeout_s,
                                                         cpu_s=max(1, int(options.timeout_s)),
                                                         memory_mb=options.memory_mb))
    if not result.ok:
        return None, result.why()
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(nonce + " "):
            try:
                return json.loads(line[len(nonce) + 1:]), ""
            except ValueError:
                break
    return None, "no result line"


class Abduction(Task):
    """``abd``: the program and f(?) == y; answer an input x with f(x) == y."""

    Config = ProgramOptions
    options: ProgramOptions

    def generate(self, rng: Any, difficulty: float) -> Instance:
        program, _, steps = draw_program(self.options, rng, difficulty)
        x = int(rng.integers(0, self.options.max_input + 1))
        output = apply_steps(steps, x)
        return Instance(f"{program}f(?) == {output}\n?=", str(x),
                        {"program": program, "output": output}, difficulty)

    def verify(self, data: dict[str, Any], answer: str) -> float:
        first = answer.strip().split("\n", 1)[0].strip()
        try:
            value = ast.literal_eval(first)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return 0.0
        if not isinstance(value, int) or isinstance(value, bool):
            return 0.0
        outputs, _ = run_cases(data["program"], [value], self.options)
        return float(outputs is not None and outputs[0] == data["output"])


class Deduction(Task):
    """``ded``: a statement and tests; answer the program ``def f(x): ...``. Score: the fraction
    of tests it passes (``accuracy`` counts programs that pass all)."""

    Config = ProgramOptions
    options: ProgramOptions

    def generate(self, rng: Any, difficulty: float) -> Instance:
        program, words, steps = draw_program(self.options, rng, difficulty)
        inputs = sorted({int(v) for v in rng.integers(0, self.options.max_input + 1, size=4)})
        outputs = [apply_steps(steps, x) for x in inputs]
        tests = "; ".join(f"f({x}) == {y}" for x, y in zip(inputs, outputs, strict=True))
        return Instance(f"Write f(x): {words}. Tests: {tests}\n", program,
                        {"inputs": inputs, "outputs": outputs}, difficulty)

    def verify(self, data: dict[str, Any], answer: str) -> float:
        outputs, _ = run_cases(answer, list(data["inputs"]), self.options)
        if outputs is None:
            return 0.0
        expected = data["outputs"]
        return sum(a == b for a, b in zip(outputs, expected, strict=True)) / len(expected)
