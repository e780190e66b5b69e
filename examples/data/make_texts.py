"""Generate the small labelled text sets used by the hookforge-bert quickstarts, tests and
benchmark. Deterministic (seeded), so anyone can regenerate the committed files:

    python examples/data/make_texts.py                     # evidence.csv and criteria.csv here
    python examples/data/make_texts.py --n 2000 --out /tmp/texts   # a bigger set

evidence.csv: single-label (supports / refutes / neutral): does a sentence back a claim?
criteria.csv: multi-label, one 0/1 column per criterion (sleep, appetite, mood, energy) mentioned.
Texts are label-bearing phrases followed by filler of varied length (3 to ~140 words), so
length-grouped batching has something to group and truncation never removes the label's evidence.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

FILLER = ("the report was written after a long week and several people read it before the meeting "
          "where it was discussed again with notes added by the team in the margin of the draft "
          "while others waited for the final numbers from the office downstairs").split()

EVIDENCE = {
    "supports": ["the data clearly confirm the claim", "this result backs the hypothesis",
                 "the trial shows the expected effect", "measurements agree with the prediction",
                 "strong evidence in favour of the statement"],
    "refutes": ["the data contradict the claim", "this result rules out the hypothesis",
                "the trial found no such effect", "measurements disagree with the prediction",
                "strong evidence against the statement"],
    "neutral": ["the weather was mild that day", "a new chair arrived for the lab",
                "the meeting moved to thursday", "lunch was served at noon as usual",
                "the printer on the second floor was repaired"],
}

CRITERIA = {
    "sleep": ["cannot sleep through the night", "wakes up at four every morning", "insomnia again"],
    "appetite": ["has no appetite", "skips meals and lost weight", "eats far less than before"],
    "mood": ["feels down most of the day", "sad and hopeless lately", "low mood for weeks"],
    "energy": ["tired all the time", "no energy to get up", "exhausted after small tasks"],
}


def _filler(rng: random.Random) -> str:
    n = int(rng.choice([rng.randint(3, 12), rng.randint(15, 60), rng.randint(60, 140)]))
    return " ".join(rng.choice(FILLER) for _ in range(n))


def evidence(n: int, rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for _ in range(n):
        label = rng.choice(list(EVIDENCE))
        # the label-bearing phrase comes first, so truncation to max_length never cuts it off
        parts = [rng.choice(EVIDENCE[label]), _filler(rng)]
        rows.append({"text": ", ".join(parts).capitalize() + ".", "label": label})
    return rows


def criteria(n: int, rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for _ in range(n):
        present = [c for c in CRITERIA if rng.random() < 0.35]
        phrases = [rng.choice(CRITERIA[c]) for c in present]
        rng.shuffle(phrases)
        parts = [*phrases, _filler(rng)]
        rows.append({"text": "Patient " + ", ".join(parts) + ".",
                     **{c: int(c in present) for c in CRITERIA}})
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="texts per file")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "evidence.csv", evidence(args.n, random.Random(args.seed)))
    write(args.out / "criteria.csv", criteria(args.n, random.Random(args.seed + 1)))
    print(f"wrote {args.n} texts each to {args.out}/evidence.csv and criteria.csv")


if __name__ == "__main__":
    main()
