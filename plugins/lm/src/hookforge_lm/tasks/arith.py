"""``arith``: integer arithmetic (``37+45=`` -> ``82``), the cheap family a tiny model learns in
minutes on a CPU. Difficulty sets the number of digits of the operands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hookforge_lm.tasks.base import Instance, Task, TaskOptions, leading_integer, scale


class ArithOptions(TaskOptions):
    min_digits: int = Field(1, ge=1, le=9, description="digits of the operands at difficulty 0")
    max_digits: int = Field(2, ge=1, le=9, description="digits of the operands at difficulty 1")
    ops: list[Literal["+", "-", "*"]] = Field(default_factory=lambda: ["+"],
                                              description="operators to draw from")

    @model_validator(mode="after")
    def _range(self) -> ArithOptions:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) is above max_digits ({self.max_digits})")
        if not self.ops:
            raise ValueError("ops needs at least one operator")
        return self


class Arith(Task):
    """``a OP b=`` -> the integer result; score 1 if the answer starts with it."""

    Config = ArithOptions
    options: ArithOptions

    def generate(self, rng: Any, difficulty: float) -> Instance:
        digits = scale(self.options.min_digits, self.options.max_digits, difficulty)
        low = 0 if digits == 1 else 10 ** (digits - 1)
        a, b = (int(v) for v in rng.integers(low, 10 ** digits, size=2))
        op = self.options.ops[int(rng.integers(len(self.options.ops)))]
        result = a + b if op == "+" else a - b if op == "-" else a * b
        return Instance(f"{a}{op}{b}=", str(result), {"result": result}, difficulty)

    def verify(self, data: dict[str, Any], answer: str) -> float:
        return float(leading_integer(answer) == data["result"])
