"""RL result check: PPO and GRPO on a tiny SFT model raise its success rate, on CPU.

Trains configs/lm/rlhf/sft.yaml (a 2-layer random Llama, briefly, on one- and two-digit sums),
scores the same model untrained (`--loop simple`: the base), then starts `ppo_lm`
(configs/lm/rlhf/ppo.yaml) and `grpo` (configs/lm/rlhf/grpo.yaml) from the SFT run with the
task's verifier as the reward, and compares the four with `hookforge compare`: the test success
rate with its Jeffreys 80% interval, and the Pareto front. Targets: each RL interval lies wholly
above the SFT's; PPO's KL per completion to the reference, averaged over the last quarter of the
rollouts (where the adaptive controller has settled), stays under loop.kl_target; all within 20
minutes on a CPU.

    .venv/bin/python benchmarks/rlhf_results.py [--out benchmarks/results/rlhf_results.txt]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "lm" / "rlhf"
FAMILY = "arith"
RUNS = ("base", "sft", "ppo", "grpo")


def hookforge(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hookforge", *args], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"hookforge {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def train(config: Path, run_dir: Path, *overrides: str) -> float:
    started = time.perf_counter()
    hookforge("train", "-c", str(config), "--run-dir", str(run_dir), "run.progress=false",
              *overrides)
    return time.perf_counter() - started


def report(lines: list[str], out: str) -> None:
    """Print a result file's lines and write them to ``out``."""
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).write_text(text)


def metrics(run_dir: Path, name: str) -> list[float]:
    from hookforge.record import RunRecord

    return [float(r["value"]) for r in RunRecord.open(run_dir).read_metrics()
            if r["name"] == name and r["split"] == "train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rlhf_results.txt"))
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hookforge-rlhf-results-") as tmp:
        runs = Path(tmp)
        seconds["sft"] = train(CONFIGS / "sft.yaml", runs / "sft")
        seconds["base"] = train(CONFIGS / "sft.yaml", runs / "base", "--loop", "simple",
                                "run.name=rlhf-base")
        for name in ("ppo", "grpo"):
            seconds[name] = train(CONFIGS / f"{name}.yaml", runs / name,
                                  f"model.pretrained={runs / 'sft'}")
        compared = json.loads(hookforge("compare", *(str(runs / n) for n in RUNS), "--json").stdout)
        table = hookforge("compare", *(str(runs / n) for n in RUNS)).stdout
        evaluation = {n: json.loads((runs / n / "evaluation.json").read_text())["test"] for n in RUNS}
        ppo_kl = metrics(runs / "ppo", "kl_sequence")
        grpo_kl = metrics(runs / "grpo", "kl")
        ppo_reward = metrics(runs / "ppo", "reward_mean")
        grpo_reward = metrics(runs / "grpo", "reward_mean")
        fits = {n: json.loads((runs / n / "run.json").read_text()).get("fit", {}) for n in RUNS}

    kl_target = yaml.safe_load((CONFIGS / "ppo.yaml").read_text())["loop"]["kl_target"]
    rows = {Path(r["run_dir"]).name: r for r in compared["runs"]}
    key = f"test/{FAMILY}/success_rate"
    low = {n: rows[n]["intervals"][key][0] for n in RUNS}
    high = {n: rows[n]["intervals"][key][1] for n in RUNS}
    total = sum(seconds.values())
    above = {n: low[n] > high["sft"] for n in ("ppo", "grpo")}
    tail = ppo_kl[-max(1, len(ppo_kl) // 4):]  # where the adaptive controller has settled
    kl_tail = sum(tail) / len(tail)
    above_target = sum(k > kl_target for k in ppo_kl) / len(ppo_kl)
    kl_ok = kl_tail <= kl_target
    met = all(above.values()) and kl_ok and total <= 20 * 60
    lines = [
        "PPO and GRPO on a tiny SFT model, CPU (benchmarks/rlhf_results.py)",
        f"configs: configs/lm/rlhf/{{sft,ppo,grpo}}.yaml; reward: the '{FAMILY}' verifier",
        "wall s: " + ", ".join(f"{n} {seconds[n]:.0f}" for n in RUNS) + f"; total {total:.0f}",
        "rollouts: " + ", ".join(f"{n} {fits[n].get('epochs')}" for n in ("ppo", "grpo")),
        "",
        f"{'run':5} {'n':>4} {'success':>8}  80% Jeffreys interval",
    ]
    for name in RUNS:
        e = evaluation[name]
        lines.append(f"{name:5} {int(e[f'{FAMILY}/n_samples']):>4} {e[f'{FAMILY}/success_rate']:>8.3f}"
                     f"  [{low[name]:.3f}, {high[name]:.3f}]")
    lines += [
        "",
        f"PPO train reward, first -> last rollout: {ppo_reward[0]:.3f} -> {ppo_reward[-1]:.3f}; "
        f"KL per completion to the reference (k1): mean of the last quarter {kl_tail:.3f} "
        f"(kl_target {kl_target}), last {ppo_kl[-1]:.3f}, max {max(ppo_kl):.3f}; "
        f"{above_target:.0%} of rollouts above the target (a 64-completion estimate is noisy)",
        f"GRPO train reward, first -> last rollout: {grpo_reward[0]:.3f} -> {grpo_reward[-1]:.3f}; "
        f"per-token KL (k3): max {max(grpo_kl):.4f}",
        f"Pareto front: {', '.join(n for n, r in rows.items() if r['pareto'])}",
        "",
        f"target: PPO's interval above SFT's: {'yes' if above['ppo'] else 'no'}; GRPO's: "
        f"{'yes' if above['grpo'] else 'no'}; PPO's KL (last quarter) under the target: "
        f"{'yes' if kl_ok else 'no'}; within 20 minutes: {'yes' if total <= 1200 else 'no'} "
        f"-> {'MET' if met else 'NOT MET'}",
        "",
        "hookforge compare output:",
        table.rstrip(),
    ]
    report(lines, args.out)


if __name__ == "__main__":
    main()
