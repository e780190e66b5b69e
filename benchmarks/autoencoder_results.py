"""Autoencoder result checks on scikit-learn's digits (minutes of CPU, so not part of `make test`).

1. Latent spaces with the same encoder, decoder and latent size (configs/autoencoder/digits.yaml):
   `vq` (dead-code expiry on) must use at least 90% of its codes, and its test MSE must be within
   1.5x of `linear`'s.
2. Anomaly detection with the plain AE (`latent: none`): each digit in turn is held out of training
   (data.exclude_classes_from_train) and scored by reconstruction error on the test split; the
   AUROC for at least one held-out digit must reach 0.80. All ten are printed, so the spread is
   visible, not just the best.
3. The `gan_ae` and `diffusion_ae` loops train for all their configured epochs (early stopping
   off) without diverging
   (every logged loss finite, the last epoch's reconstruction loss below the first's) and their
   reconstruction figures are drawn.

    .venv/bin/python benchmarks/autoencoder_results.py [--digits 0 1 ... 9]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "autoencoder" / "digits.yaml"


def train(out: Path, overrides: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]], Path, float]:
    import hookforge

    start = time.perf_counter()
    result = hookforge.train(DIGITS, [f"run.output_dir={out}", *overrides])
    seconds = time.perf_counter() - start
    metrics = hookforge.RunRecord.open(result.run_dir).read_metrics()
    return result.evaluation, metrics, Path(result.run_dir), seconds


def latent_spaces(out: Path) -> list[str]:
    lines, failures = ["1. latent spaces (mlp [128, 64] encoder/decoder, latent_dim 16, 30 epochs)"], []
    runs = {}
    for latent, extra in (("linear", []),
                          ("vq", ["model.latent.codebook_size=64",
                                  "model.latent.threshold_ema_dead_code=2"])):
        evaluation, _, _, seconds = train(out, [f"model.latent={latent}", *extra])
        runs[latent] = evaluation["test"]
        test = evaluation["test"]
        usage = f"  code_usage {test['code_usage']:.3f}  perplexity {test['perplexity']:.1f}" \
            if "code_usage" in test else ""
        lines.append(f"   {latent:<7} test mse {test['mse']:.4f}{usage}  ({seconds:.1f} s)")
    usage, ratio = runs["vq"]["code_usage"], runs["vq"]["mse"] / runs["linear"]["mse"]
    lines.append(f"   vq code usage {usage:.3f} (>= 0.90: {'met' if usage >= 0.9 else 'NOT met'}); "
                 f"vq/linear test mse {ratio:.2f} (<= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    if usage < 0.9 or ratio > 1.5:
        failures.append("latent spaces")
    return lines + [f"   FAILED: {f}" for f in failures]


def anomaly(out: Path, digits: list[int]) -> list[str]:
    lines = ["2. anomaly detection, plain AE (latent none), one digit held out of training at a time"]
    aurocs = {}
    for digit in digits:
        evaluation, _, _, seconds = train(out, ["model.latent=none",
                                                f"data.exclude_classes_from_train=[{digit}]"])
        aurocs[digit] = evaluation["test"]["anomaly_auroc"]
        lines.append(f"   held out {digit}: test AUROC {aurocs[digit]:.3f}  ({seconds:.1f} s)")
    best = max(aurocs, key=aurocs.__getitem__)
    mean = sum(aurocs.values()) / len(aurocs)
    lines.append(f"   best: digit {best} at {aurocs[best]:.3f}; mean over {len(aurocs)} digits {mean:.3f}; "
                 f"{sum(a >= 0.8 for a in aurocs.values())} of {len(aurocs)} at >= 0.80 "
                 f"(>= 0.80 for a held-out digit: {'met' if aurocs[best] >= 0.8 else 'NOT met'})")
    return lines


def loops(out: Path) -> list[str]:
    lines = ["3. adversarial and diffusion loops (digits, 9 held out)"]
    for loop, extra in (("gan_ae", []), ("diffusion_ae", ["model.decoder=denoiser"])):
        evaluation, metrics, run_dir, seconds = train(out, [f"loop.name={loop}",
                                                            "loop.early_stopping.metric=null", *extra])
        losses = [m["value"] for m in metrics if m["name"].endswith("loss")]
        by_epoch = {m["epoch"]: m["value"] for m in metrics  # the last train/loss of each epoch
                    if m["split"] == "train" and m["name"] == "loss" and m["epoch"] is not None}
        recon = [by_epoch[e] for e in sorted(by_epoch)]
        finite = all(math.isfinite(v) for v in losses)
        figures = sorted(p.name for p in (run_dir / "figures").glob("recon*.png"))
        ok = finite and recon[-1] < recon[0] and figures
        extras = sorted({m["name"] for m in metrics if m["split"] == "train"} - {"loss", "lr"})
        lines.append(f"   {loop:<13} {len(recon)} epochs, train/loss {recon[0]:.4f} -> {recon[-1]:.4f}, "
                     f"all {len(losses)} logged losses finite: {finite}; also logged {extras}; "
                     f"test mse {evaluation['test']['mse']:.4f}, AUROC "
                     f"{evaluation['test']['anomaly_auroc']:.3f}; recon figures {figures}  "
                     f"({seconds:.1f} s) -> {'met' if ok else 'NOT met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for part in (latent_spaces, lambda o: anomaly(o, args.digits), loops):
            print("\n".join(part(out)), flush=True)


if __name__ == "__main__":
    main()
