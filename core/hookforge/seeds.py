"""Derived seeds: one base seed (``run.seed``) gives every independent stream its own seed.

A search stage, a search worker process, a re-run after a kill, an environment of a vector env:
each needs a seed of its own, or they draw the same numbers (two workers proposing the same
configurations, stage 1 replaying stage 0). Deriving them by hashing the base seed with names
keeps the whole reproducible from ``run.seed`` alone.
"""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *parts: object, bits: int = 32) -> int:
    """A seed in ``[0, 2**bits)`` from ``base`` and ``parts`` (names, indices): the same inputs
    always give the same seed, and different ``parts`` give unrelated ones.

    >>> derive_seed(42, "stage", "coarse") == derive_seed(42, "stage", "coarse")
    True
    """
    text = "\x1f".join([str(int(base)), *(str(p) for p in parts)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (1 << bits)
