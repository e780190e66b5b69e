"""Generate preference pairs (prompt, chosen, rejected) from a verifiable task family, for the
reward-model stage of the RLHF pipeline (configs/lm/rlhf.yaml):

    python examples/data/make_preferences.py                                # arith, 2000 pairs
    python examples/data/make_preferences.py --family sat --options '{"max_vars": 4}' --n 500

Each pair's prompt is an instance exactly as the `tasks` data source writes it; `chosen` is its
right answer and `rejected` the answer of another instance of the family that the verifier
scores lower on this one (so the labels are computed, not guessed). Deterministic (seeded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def pairs(family: str, options: dict, n: int, seed: int) -> list[dict[str, str]]:
    from hookforge import registry

    task_cls = registry.load("task", family)
    task = task_cls(task_cls.Config.model_validate(options))
    rng = np.random.default_rng(seed)
    instances = [task.generate(rng, float(rng.uniform(0, 1))) for _ in range(n)]
    rows = []
    for instance in instances:
        right = task.verify(instance.data, instance.answer)
        for _ in range(20):  # another instance's answer that is worse here
            other = instances[int(rng.integers(len(instances)))].answer
            if task.verify(instance.data, other) < right:
                rows.append({"prompt": instance.prompt, "chosen": instance.answer,
                             "rejected": other})
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="arith", help="a task family (hookforge.tasks)")
    parser.add_argument("--options", default='{"max_digits": 1}', help="the family's options (JSON)")
    parser.add_argument("--n", type=int, default=2000, help="pairs to write (at most)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(Path(__file__).with_name("arith_prefs.jsonl")))
    args = parser.parse_args()
    rows = pairs(args.family, json.loads(args.options), args.n, args.seed)
    out = Path(args.out)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} preference pairs of '{args.family}' -> {out}")


if __name__ == "__main__":
    main()
