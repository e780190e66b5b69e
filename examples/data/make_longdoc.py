"""Generate long documents whose label depends on two words far apart, for hookforge-mamba:

    python examples/data/make_longdoc.py                                  # longdoc.jsonl here
    python examples/data/make_longdoc.py --n 200 --min-words 64 --max-words 256 --out /tmp/t.jsonl

Each document is filler words (a Zipf-distributed vocabulary of --filler words), with one key
statement near the start ("open KEY", within the first 5% of the words) and one near the end
("close KEY", within the last 5%). The label is ``match`` when the two keys are the same word and
``differ`` otherwise, half and half. Every key word also occurs as a distractor elsewhere in the
document (never after "open" or "close"), so no single word or local phrase gives the label
away: a model has to carry what it read at the start to the end. Deterministic (seeded).

Rows: {"id", "text", "label", "words"} as JSON lines (the ``text`` source reads them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

KEYS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor"]


def make_documents(n: int, min_words: int, max_words: int, filler: int = 300,
                   seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(filler)])
    weights = 1.0 / np.arange(1, filler + 1)
    weights /= weights.sum()
    rows = []
    for i in range(n):
        length = int(rng.integers(min_words, max_words + 1))
        words = vocabulary[rng.choice(filler, size=length, p=weights)].astype(object)
        for _ in range(max(2, length // 200)):  # distractor keys, away from the two statements
            words[rng.integers(length // 10, length - length // 10)] = KEYS[rng.integers(len(KEYS))]
        match = i % 2 == 0
        first = int(rng.integers(len(KEYS)))
        second = first if match else int((first + rng.integers(1, len(KEYS))) % len(KEYS))
        span = max(1, length // 20)
        start = int(rng.integers(0, span))
        end = int(rng.integers(length - span - 1, length - 1))
        words[start], words[start + 1] = "open", KEYS[first]
        words[end], words[end + 1] = "close", KEYS[second]
        rows.append({"id": f"doc{i}", "text": " ".join(words), "label": "match" if match else "differ",
                     "words": length})
    order = rng.permutation(n)
    return [rows[j] for j in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--min-words", type=int, default=1000)
    parser.add_argument("--max-words", type=int, default=16000)
    parser.add_argument("--filler", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("longdoc.jsonl"))
    args = parser.parse_args()
    if not 8 <= args.min_words <= args.max_words:
        parser.error("need 8 <= --min-words <= --max-words")
    rows = make_documents(args.n, args.min_words, args.max_words, args.filler, args.seed)
    with open(args.out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    print(f"{args.out}: {len(rows)} documents of {args.min_words}-{args.max_words} words")


if __name__ == "__main__":
    main()
