"""Generate a small jet-like HDF5 file: sets of particles, for the autoencoder's ``gnn`` parts
and the ``h5`` data source. Deterministic (seeded), so anyone can regenerate the committed file:

    python examples/data/make_jets.py                          # jets.h5 here (1500 jets)
    python examples/data/make_jets.py --n 200000 --out /tmp/big.h5   # a bigger one

Each jet is a set of up to ``--particles`` particles with three features (the fraction of the
jet's momentum, and the pseudorapidity and azimuth offsets from the jet axis), sorted by momentum
and zero-padded; ``mask`` marks the real particles. Three classes, as in anomaly-detection
studies: 0 light-quark-like (one narrow prong, few particles), 1 gluon-like (one wide prong,
more particles), 2 top-like (three prongs): train on 0 and 1, score 2 as the anomaly.

Datasets: ``features`` [n, particles, 3] float32, ``mask`` [n, particles] uint8, ``labels`` [n]
int64; chunked by rows and compressed, as experiment files are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def make_jets(n: int, particles: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = np.zeros((n, particles, 3), dtype=np.float32)
    mask = np.zeros((n, particles), dtype=np.uint8)
    labels = rng.integers(0, 3, size=n)
    for i, label in enumerate(labels):
        if label == 0:  # narrow, few particles
            count, prongs, width = rng.integers(8, 16), [(0.0, 0.0)], 0.05
        elif label == 1:  # wide, many particles
            count, prongs, width = rng.integers(16, particles + 1), [(0.0, 0.0)], 0.12
        else:  # three hard prongs around the axis
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2]) + rng.normal(0, 0.3, 3)
            radius = rng.uniform(0.15, 0.3)
            prongs = [(radius * np.cos(a), radius * np.sin(a)) for a in angles]
            count, width = rng.integers(14, particles + 1), 0.04
        count = int(min(count, particles))
        which = rng.integers(0, len(prongs), size=count)
        centres = np.array(prongs)[which]
        position = centres + rng.normal(0, width, size=(count, 2))
        momentum = rng.exponential(1.0, size=count) * (1.5 if label == 2 else 1.0) ** (which == 0)
        momentum = np.sort(momentum)[::-1]
        features[i, :count, 0] = momentum / momentum.sum()
        features[i, :count, 1:] = position[np.argsort(-momentum, kind="stable")]
        mask[i, :count] = 1
    return features, mask, labels.astype(np.int64)


def write(path: Path, n: int, particles: int, seed: int) -> None:
    import h5py

    features, mask, labels = make_jets(n, particles, seed)
    chunk = min(n, 512)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features, chunks=(chunk, particles, 3),
                              compression="gzip", shuffle=True)
        handle.create_dataset("mask", data=mask, chunks=(chunk, particles), compression="gzip")
        handle.create_dataset("labels", data=labels)
        handle.attrs["classes"] = "0 light-quark-like, 1 gluon-like, 2 top-like (3 prongs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1500, help="jets")
    parser.add_argument("--particles", type=int, default=30, help="particles per jet (padded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("jets.h5"))
    args = parser.parse_args()
    write(args.out, args.n, args.particles, args.seed)
    print(f"wrote {args.out} ({args.n} jets of up to {args.particles} particles)")


if __name__ == "__main__":
    main()
