"""Per-step cost of `hookforge train` with the autoencoder (the `ae` loop, local tracker, progress
bar on, default logging) against a hand-written PyTorch loop: the same encoder and decoder
(Linear/ReLU stacks of the same sizes), data, batch size, optimizer and number of steps; and the
same with a `vq` latent, where the plain loop calls vector-quantize-pytorch's VectorQuantize
itself with the same options.

Each side runs in its own subprocess, sides interleaved over repeats. Time per step = the median
over epochs after the first (warm-up) of epoch training time / steps. Target (issue 20): ratio
<= 1.05 for both.

    .venv/bin/python benchmarks/autoencoder_overhead.py [--repeats 4] [--epochs 5]

The plain loop scales the data once before training, as a hand-written script would; hookforge's
model scales each batch inside its forward (the statistics live in the checkpoint, so a loaded
model reconstructs raw rows): that subtraction and division is part of what is measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_ROWS, N_FEATURES = 16384, 64
HIDDEN, LATENT, BATCH = [256, 128], 16, 128
VQ = {"codebook_size": 64, "decay": 0.8, "commitment_weight": 1.0, "kmeans_init": True,
      "threshold_ema_dead_code": 2}


def make_data(path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, N_FEATURES))
    X = (rng.normal(size=(N_ROWS, 8)) @ basis + 0.1 * rng.normal(size=(N_ROWS, N_FEATURES)))
    np.savez(path, X=X.astype(np.float32), y=rng.integers(0, 2, N_ROWS))


def run_hookforge(data: Path, latent: str, epochs: int, out: Path) -> list[float]:
    import hookforge

    os.environ["HOOKFORGE_PROGRESS"] = "1"  # the progress bar is part of what is measured
    config = {
        "run": {"name": "bench", "seed": 0, "output_dir": str(out), "figures": False},
        "data": {"name": "arrays", "path": str(data),
                 "split": {"val": 0.0, "test": 0.0, "stratify": False}},
        "model": {"name": "autoencoder", "latent_dim": LATENT, "scale": "standardize",
                  "encoder": {"name": "mlp", "hidden": HIDDEN},
                  "decoder": {"name": "mlp", "hidden": HIDDEN},
                  "latent": {"name": latent, **(VQ if latent == "vq" else {})}},
        "loop": {"name": "ae", "epochs": epochs, "batch_size": BATCH, "device": "cpu",
                 "drop_last": True, "monitor": "train/loss",
                 "optimizer": {"name": "adamw", "lr": 1e-3}},
        "trackers": ["local"],
        "evaluators": [],
    }
    result = hookforge.train(config)
    rows = hookforge.RunRecord.open(result.run_dir).read_metrics()
    steps = N_ROWS // BATCH
    return [r["value"] / steps for r in rows if r["name"] == "epoch_time_s"]


def run_plain(data: Path, latent: str, epochs: int) -> list[float]:
    # the libraries the hookforge process has loaded before torch (see loop_overhead.py)
    import numpy as np
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import torch

    torch.manual_seed(0)
    X = np.load(data)["X"]
    X = torch.from_numpy((X - X.mean(0)) / X.std(0))

    def stack(sizes: list[int]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    encoder = stack([N_FEATURES, *HIDDEN, LATENT])
    decoder = stack([LATENT, *reversed(HIDDEN), N_FEATURES])
    modules = torch.nn.ModuleList([encoder, decoder])
    quantizer = None
    if latent == "vq":
        from vector_quantize_pytorch import VectorQuantize

        quantizer = VectorQuantize(dim=LATENT, **VQ)
        modules.append(quantizer)
    optimizer = torch.optim.AdamW([p for p in modules.parameters() if p.requires_grad], lr=1e-3,
                                  fused=True)
    per_step = []
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(N_ROWS)
        start = time.perf_counter()
        for i in range(0, N_ROWS - N_ROWS % BATCH, BATCH):
            xb = X.index_select(0, torch.from_numpy(order[i:i + BATCH]))
            z = encoder(xb)
            aux = 0.0
            if quantizer is not None:
                z, _, commitment = quantizer(z)
                aux = commitment.sum()
            loss = (decoder(z) - xb).pow(2).mean() + aux
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        per_step.append((time.perf_counter() - start) / (N_ROWS // BATCH))
    return per_step


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.side == "hookforge":
            times = run_hookforge(Path(args.data), args.latent, args.epochs, Path(tmp))
        else:
            times = run_plain(Path(args.data), args.latent, args.epochs)
    print(json.dumps({"per_step": times}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--side", choices=["hookforge", "plain"])
    parser.add_argument("--latent", choices=["none", "vq"], default="none")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.side:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.npz"
        make_data(data)
        print(f"{N_ROWS} rows x {N_FEATURES}, MLP {HIDDEN} -> {LATENT}, batch {BATCH}, "
              f"{args.repeats} repeats x {args.epochs} epochs (first epoch of each is warm-up)")
        print(f"{'latent':<7} {'side':<10} {'median step ms':>15}")
        for latent in ("none", "vq"):
            steps: dict[str, list[float]] = {"plain": [], "hookforge": []}
            for _ in range(args.repeats):
                for side in ("plain", "hookforge"):
                    out = subprocess.run([sys.executable, __file__, "--side", side, "--latent",
                                          latent, "--data", str(data), "--epochs", str(args.epochs)],
                                         capture_output=True, text=True, check=True)
                    steps[side] += json.loads(out.stdout.strip().splitlines()[-1])["per_step"][1:]
            medians = {side: statistics.median(values) for side, values in steps.items()}
            for side in ("plain", "hookforge"):
                print(f"{latent:<7} {side:<10} {medians[side] * 1e3:>15.3f}")
            ratio = medians["hookforge"] / medians["plain"]
            print(f"{latent:<7} ratio hookforge/plain = {ratio:.3f} (target <= 1.05: "
                  f"{'met' if ratio <= 1.05 else 'NOT met'})")


if __name__ == "__main__":
    main()
