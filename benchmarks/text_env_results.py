"""Text-environment result check: PPO over whole episodes raises the success rate of an SFT
model on a multi-turn task, on CPU.

Trains configs/lm/textenv/sft.yaml (a 2-layer random Llama on the expert's demonstrations of
hookforge/TextShop-v0, one row per turn), then configs/lm/textenv/ppo.yaml from it (PPO over
whole episodes, the environment's per-step and completion rewards), and compares the two on the
same 200 test episodes with `hookforge compare`: the success rate with its Jeffreys 80% interval
and the Pareto front. Target: PPO's interval lies wholly above SFT's, within 20 minutes on a CPU.

    .venv/bin/python benchmarks/text_env_results.py [--out benchmarks/results/text_env_results.txt]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rlhf_results import hookforge, metrics, report, train  # the same subprocess helpers

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "lm" / "textenv"
RUNS = ("sft", "ppo")


def quarter_means(values: list[float]) -> tuple[float, float]:
    quarter = max(1, len(values) // 4)
    return sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "text_env_results.txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookforge-text-env-results-") as tmp:
        runs = Path(tmp)
        seconds = {"sft": train(CONFIGS / "sft.yaml", runs / "sft")}
        seconds["ppo"] = train(CONFIGS / "ppo.yaml", runs / "ppo", f"model.pretrained={runs / 'sft'}")
        compared = json.loads(hookforge("compare", *(str(runs / n) for n in RUNS), "--json").stdout)
        table = hookforge("compare", *(str(runs / n) for n in RUNS)).stdout
        evaluation = {n: json.loads((runs / n / "evaluation.json").read_text())["test"] for n in RUNS}
        reward, success = metrics(runs / "ppo", "reward_mean"), metrics(runs / "ppo", "success_rate")
        kl, turns = metrics(runs / "ppo", "kl"), metrics(runs / "ppo", "episode_length")
        transcripts = [json.loads(line)["transcript"] for line in
                       (runs / "ppo" / "generations" / "test.jsonl").read_text().splitlines()[:2]]

    rows = {Path(r["run_dir"]).name: r for r in compared["runs"]}
    low = {n: rows[n]["intervals"]["test/success_rate"][0] for n in RUNS}
    high = {n: rows[n]["intervals"]["test/success_rate"][1] for n in RUNS}
    total = sum(seconds.values())
    above = low["ppo"] > high["sft"]
    met = above and total <= 20 * 60
    lines = [
        "PPO over whole episodes of a multi-turn text environment, CPU (benchmarks/text_env_results.py)",
        "env: hookforge/TextShop-v0 (catalogue 5, lists of 1-3 items); configs: "
        "configs/lm/textenv/{sft,ppo}.yaml",
        "wall s: " + ", ".join(f"{n} {seconds[n]:.0f}" for n in RUNS) + f"; total {total:.0f}",
        "",
        f"{'run':4} {'episodes':>8} {'return':>7} {'turns':>6} {'success':>8}  80% Jeffreys interval",
    ]
    for name in RUNS:
        e = evaluation[name]
        lines.append(f"{name:4} {int(e['episodes']):>8} {e['mean_return']:>7.3f} {e['mean_length']:>6.2f} "
                     f"{e['success_rate']:>8.3f}  [{low[name]:.3f}, {high[name]:.3f}]")
    first, last = quarter_means(reward)
    s_first, s_last = quarter_means(success)
    lines += [
        "",
        f"PPO rollouts: {len(reward)}; train return (sampled, temperature 1), first -> last quarter: "
        f"{first:.3f} -> {last:.3f}; train success {s_first:.3f} -> {s_last:.3f}; "
        f"per-token KL to the SFT model: last quarter {quarter_means(kl)[1]:.3f}, max {max(kl):.3f}; "
        f"turns per episode {turns[0]:.2f} -> {turns[-1]:.2f}",
        f"Pareto front: {', '.join(n for n, r in rows.items() if r['pareto'])}",
        "",
        f"target: PPO's interval above SFT's: {'yes' if above else 'no'}; within 20 minutes: "
        f"{'yes' if total <= 1200 else 'no'} -> {'MET' if met else 'NOT MET'}",
        "",
        "two PPO test episodes (greedy):",
        *(f"  {t!r}" for t in transcripts),
        "",
        "hookforge compare output:",
        table.rstrip(),
    ]
    report(lines, args.out)


if __name__ == "__main__":
    main()
