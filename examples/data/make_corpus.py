"""Generate a retrieval corpus with queries and exact relevance labels, for hookforge-rag:

    python examples/data/make_corpus.py                        # corpus.jsonl + queries.jsonl here
    python examples/data/make_corpus.py --docs 50000 --queries 500 --out /tmp/big

Each document describes one fictional person in plain English sentences (profession, city,
hobby, pet, favourite colour) mixed with filler sentences, so that documents have different
lengths and long ones are chunked. A query asks for a combination of three attributes ("the
nurse in Oslo who enjoys chess"); its relevant documents are exactly those whose person has all
three (computed, not guessed). Deterministic (seeded).

corpus.jsonl rows: {"id", "text", "city"}; queries.jsonl rows: {"id", "query", "relevant": [ids]}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FIRST = ["Alma", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kaia", "Luca", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Ugo",
         "Vera", "Wim", "Xenia", "Yusuf", "Zora"]
LAST = ["Voss", "Marino", "Kowalski", "Ferreira", "Lindqvist", "Okafor", "Haddad", "Novak",
        "Moreau", "Tanaka", "Schmidt", "Duarte", "Ivanova", "Berg", "Costa", "Nakamura"]
PROFESSIONS = ["nurse", "carpenter", "astronomer", "baker", "pilot", "librarian", "geologist",
               "violinist", "architect", "firefighter", "pharmacist", "translator", "chef",
               "beekeeper", "surgeon", "journalist", "plumber", "botanist", "lawyer", "sculptor"]
CITIES = ["Oslo", "Lisbon", "Nairobi", "Kyoto", "Lima", "Porto", "Krakow", "Dakar", "Hanoi",
          "Quito", "Tbilisi", "Bergen", "Seville", "Tunis", "Riga", "Cusco"]
HOBBIES = ["chess", "sailing", "pottery", "birdwatching", "rock climbing", "knitting",
           "astronomy", "gardening", "fencing", "origami", "kayaking", "calligraphy"]
PETS = ["cat", "parrot", "tortoise", "dog", "rabbit", "goldfish", "ferret", "hedgehog"]
COLOURS = ["crimson", "teal", "amber", "violet", "olive", "navy", "coral", "ivory"]
FILLER = ["The weather that spring was unusually mild.", "Most mornings begin with strong coffee.",
          "The neighbourhood market opens early on Saturdays.", "Trains to the coast run every hour.",
          "The old library on the square was renovated last year.",
          "Summer evenings there are long and bright.", "A small river runs through the town centre.",
          "The local football club has a loyal following.", "Winters can be grey and windy.",
          "Street musicians often play near the harbour."]


def make_corpus(docs: int, queries: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    people = []
    rows = []
    for i in range(docs):
        person = {"first": FIRST[rng.integers(len(FIRST))], "last": LAST[rng.integers(len(LAST))],
                  "profession": PROFESSIONS[rng.integers(len(PROFESSIONS))],
                  "city": CITIES[rng.integers(len(CITIES))], "hobby": HOBBIES[rng.integers(len(HOBBIES))],
                  "pet": PETS[rng.integers(len(PETS))], "colour": COLOURS[rng.integers(len(COLOURS))]}
        first = person["first"]
        facts = [f"{first} {person['last']} works as a {person['profession']} in {person['city']}.",
                 f"In the evenings, {first} enjoys {person['hobby']}.",
                 f"{first} lives with a {person['pet']}.",
                 f"{first}'s favourite colour is {person['colour']}."]
        sentences = facts + [FILLER[j] for j in rng.integers(len(FILLER), size=int(rng.integers(0, 24)))]
        order = [0, *(1 + rng.permutation(len(sentences) - 1))]  # the name comes first
        people.append(person)
        rows.append({"id": f"d{i:06d}", "text": " ".join(sentences[j] for j in order),
                     "city": person["city"]})
    asked = []
    for q in range(queries):
        target = people[int(rng.integers(docs))]
        relevant = [rows[i]["id"] for i, p in enumerate(people)
                    if (p["profession"], p["city"], p["hobby"]) ==
                    (target["profession"], target["city"], target["hobby"])]
        asked.append({"id": f"q{q:05d}", "relevant": relevant,
                      "query": f"Which {target['profession']} in {target['city']} enjoys "
                               f"{target['hobby']}?"})
    return rows, asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--queries", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent,
                        help="folder for corpus.jsonl and queries.jsonl")
    args = parser.parse_args()
    rows, queries = make_corpus(args.docs, args.queries, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, items in (("corpus.jsonl", rows), ("queries.jsonl", queries)):
        (args.out / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    print(f"{len(rows)} documents, {len(queries)} queries in {args.out}")


if __name__ == "__main__":
    main()
