"""SFT result check: a tiny causal LM trained from scratch on CPU beats its untrained base.

Trains configs/lm/sft_tiny.yaml (a 3-layer random Llama, a byte-level tokenizer trained on the
data, one-digit sums plus small SAT, abduction and deduction problems), scores the same model
untrained (`--loop simple`: the base, evaluated as it is), and compares both with
`hookforge compare`: per family the test success rate with its Jeffreys 80% interval, and the
Pareto front. The target: on the cheap family (`arith`) the SFT interval lies wholly above the
base's, within 15 minutes on a CPU.

    .venv/bin/python benchmarks/lm_results.py [--out benchmarks/results/lm_results.txt]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lm" / "sft_tiny.yaml"
CHEAP = "arith"


def hookforge(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hookforge", *args], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"hookforge {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lm_results.txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookforge-lm-results-") as tmp:
        runs = Path(tmp)
        started = time.perf_counter()
        hookforge("train", "-c", str(CONFIG), "--run-dir", str(runs / "sft"), "run.progress=false")
        sft_s = time.perf_counter() - started
        started = time.perf_counter()
        hookforge("train", "-c", str(CONFIG), "--loop", "simple", "run.name=lm-base",
                  "--run-dir", str(runs / "base"), "run.progress=false")
        base_s = time.perf_counter() - started
        compared = json.loads(hookforge("compare", str(runs / "sft"), str(runs / "base"),
                                        "--json").stdout)
        table = hookforge("compare", str(runs / "sft"), str(runs / "base")).stdout
        evaluation = {name: json.loads((runs / name / "evaluation.json").read_text())["test"]
                      for name in ("base", "sft")}
        fit = json.loads((runs / "sft" / "run.json").read_text()).get("fit", {})

    rows = {Path(r["run_dir"]).name: r for r in compared["runs"]}
    key = f"test/{CHEAP}/success_rate"
    base_low, base_high = rows["base"]["intervals"][key]
    sft_low, sft_high = rows["sft"]["intervals"][key]
    met = sft_low > base_high and sft_s + base_s <= 15 * 60
    families = sorted({k.split("/")[0] for k in evaluation["sft"] if k.count("/") == 1})
    lines = [
        "SFT of a tiny causal LM from scratch on CPU (benchmarks/lm_results.py)",
        f"config: {CONFIG.relative_to(ROOT)}; SFT {sft_s:.0f} s wall (training and evaluation, "
        f"{fit.get('epochs')} epochs, {fit.get('steps')} steps), base {base_s:.0f} s",
        "",
        f"{'family':8} {'run':5} {'n':>4} {'accuracy':>9} {'mean':>6} {'std':>6} {'median':>6} "
        f"{'success':>8}  80% Jeffreys interval",
    ]
    for family in families:
        for name in ("base", "sft"):
            e = evaluation[name]
            lines.append(
                f"{family:8} {name:5} {int(e[f'{family}/n_samples']):>4} "
                f"{e[f'{family}/accuracy']:>9.3f} {e[f'{family}/mean_score']:>6.3f} "
                f"{e[f'{family}/std_score']:>6.3f} {e[f'{family}/median_score']:>6.3f} "
                f"{e[f'{family}/success_rate']:>8.3f}  [{e[f'{family}/success_rate_low']:.3f}, "
                f"{e[f'{family}/success_rate_high']:.3f}]")
    for name in ("base", "sft"):
        e = evaluation[name]
        n_all = int(sum(e[f"{family}/n_samples"] for family in families))
        lines.append(f"{'all':8} {name:5} {n_all:>4} {e['accuracy']:>9.3f} {e['mean_score']:>6.3f} "
                     f"{e['std_score']:>6.3f} {e['median_score']:>6.3f} {e['success_rate']:>8.3f}  "
                     f"[{e['success_rate_low']:.3f}, {e['success_rate_high']:.3f}]")
    lines += [
        "",
        f"Pareto front: {', '.join(n for n, r in rows.items() if r['pareto'])}",
        f"target: on '{CHEAP}' the SFT interval [{sft_low:.3f}, {sft_high:.3f}] lies above the "
        f"base's [{base_low:.3f}, {base_high:.3f}], all within 15 minutes: "
        f"{'MET' if met else 'NOT MET'}",
        "",
        "hookforge compare output:",
        table.rstrip(),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
