"""``sat``: random k-SAT near the satisfiability threshold, only satisfiable instances.

An instance is ``n`` variables and ``round(clause_ratio * n)`` clauses of ``k`` distinct
variables with random signs (for 3-SAT the threshold is a ratio of about 4.26). ``method:
planted`` draws an assignment first and keeps only clauses it satisfies; ``method: solver``
draws clauses freely and keeps the instance if the ``python-sat`` solver finds a model (the
reference answer is that model). The answer lists one literal per variable (``1 -2 3``: x1
true, x2 false, x3 true); it scores 1 if every clause holds, or with ``partial_credit`` the
fraction of clauses that hold. Checking an assignment runs no code, so it happens in-process.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from hookforge_lm.tasks.base import Instance, Task, TaskOptions, scale

LITERAL = re.compile(r"-?\d+")


class SatOptions(TaskOptions):
    min_vars: int = Field(3, ge=2, description="variables at difficulty 0")
    max_vars: int = Field(8, ge=2, description="variables at difficulty 1")
    k: int = Field(3, ge=2, le=5, description="literals per clause")
    clause_ratio: float = Field(4.26, gt=0, description="clauses per variable (4.26: the 3-SAT "
                                                        "threshold)")
    method: Literal["planted", "solver"] = Field("planted", description="how satisfiable "
                                                                        "instances are made")
    partial_credit: bool = Field(False, description="score the fraction of satisfied clauses")

    @model_validator(mode="after")
    def _range(self) -> SatOptions:
        if self.min_vars > self.max_vars:
            raise ValueError(f"min_vars ({self.min_vars}) is above max_vars ({self.max_vars})")
        if self.k > self.min_vars:
            raise ValueError(f"k={self.k} needs at least {self.k} variables (min_vars={self.min_vars})")
        return self


def satisfied(clauses: list[list[int]], assignment: dict[int, bool]) -> int:
    """How many clauses hold under ``assignment`` (a variable missing from it holds no literal)."""
    return sum(any(assignment.get(abs(lit)) == (lit > 0) for lit in clause) for clause in clauses)


def parse_assignment(answer: str, n_vars: int) -> dict[int, bool] | None:
    """``"1 -2 3"`` -> {1: True, 2: False, 3: True}; None if a variable is out of range or set
    both ways."""
    assignment: dict[int, bool] = {}
    for text in LITERAL.findall(answer.split("\n", 1)[0])[: 4 * n_vars]:
        literal = int(text)
        var = abs(literal)
        if not 1 <= var <= n_vars or assignment.get(var, literal > 0) != (literal > 0):
            return None
        assignment[var] = literal > 0
    return assignment


class Sat(Task):
    """Satisfiable random k-SAT (see the module docstring)."""

    Config = SatOptions
    options: SatOptions

    def _clause(self, rng: Any, n: int) -> list[int]:
        variables = rng.choice(n, size=self.options.k, replace=False) + 1
        signs = rng.integers(0, 2, size=self.options.k) * 2 - 1
        return sorted((int(v * s) for v, s in zip(variables, signs, strict=True)), key=abs)

    def generate(self, rng: Any, difficulty: float) -> Instance:
        o = self.options
        n = scale(o.min_vars, o.max_vars, difficulty)
        m = max(1, round(o.clause_ratio * n))
        if o.method == "planted":
            planted = {v: bool(rng.integers(0, 2)) for v in range(1, n + 1)}
            clauses: list[list[int]] = []
            while len(clauses) < m:
                clause = self._clause(rng, n)
                if satisfied([clause], planted):
                    clauses.append(clause)
            model = planted
        else:
            clauses, model = self._solved(rng, n, m)
        text = " , ".join(" ".join(str(lit) for lit in clause) for clause in clauses)
        answer = " ".join(str(v if model[v] else -v) for v in range(1, n + 1))
        return Instance(f"SAT {n}: {text} ->", answer, {"n_vars": n, "clauses": clauses},
                        difficulty)

    def _solved(self, rng: Any, n: int, m: int) -> tuple[list[list[int]], dict[int, bool]]:
        from pysat.solvers import Solver

        for _ in range(1000):  # near the threshold about half are satisfiable
            clauses = [self._clause(rng, n) for _ in range(m)]
            with Solver(name="minisat22", bootstrap_with=clauses) as solver:
                if solver.solve():
                    found = solver.get_model() or []
                    model = {abs(lit): lit > 0 for lit in found}
                    return clauses, {v: model.get(v, True) for v in range(1, n + 1)}
        raise RuntimeError(f"no satisfiable {self.options.k}-SAT instance with {n} variables and "
                           f"{m} clauses in 1000 draws; lower clause_ratio")

    def verify(self, data: dict[str, Any], answer: str) -> float:
        clauses = data["clauses"]
        assignment = parse_assignment(answer, int(data["n_vars"]))
        if assignment is None or not clauses:
            return 0.0
        held = satisfied(clauses, assignment)
        if self.options.partial_credit:
            return held / len(clauses)
        return float(held == len(clauses))
