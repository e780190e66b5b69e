"""PPO throughput on CartPole-v1: environment steps per second over 100k steps, whole processes,
all sides in one run with the same hyperparameters (configs/ppo/cartpole.yaml: 8 envs, n_steps 32,
batch 256, 20 epochs, gamma 0.98, lambda 0.8, lin_0.001, lin_0.2) and seeds:

- hookforge: `hookforge train -c configs/ppo/cartpole.yaml` (evaluation only at the end, as the
  others; the run record, checkpoints and figures included);
- stable-baselines3 2.9's PPO (pip install stable-baselines3);
- benchmarks/ppo_single_file.py, a CleanRL-style single file.

Each side then plays 20 deterministic evaluation episodes, so the learning curves can be compared.
Prints steps per second, the ratios, and where hookforge's time goes (its time/ metrics).

    python benchmarks/ppo_throughput.py [--seeds 1 2] [--steps 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SB3 = """
import sys, time
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
import gymnasium as gym
seed, steps = int(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
lin = lambda start: (lambda remaining: start * remaining)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=lin(0.001), clip_range=lin(0.2), seed=seed, device="cpu",
            verbose=0)
model.learn(steps)
trained = time.perf_counter() - t
mean, _ = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=20, deterministic=True)
print(f"return {mean:.1f} train_s {trained:.2f} total_s {time.perf_counter() - t:.2f}")
"""


def run(command: list[str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def hookforge_side(seed: int, steps: int, tmp: str) -> tuple[float, float, dict[str, float]]:
    run_dir = Path(tmp) / f"hf-{seed}"
    seconds, _ = run([sys.executable, "-m", "hookforge", "-q", "train", "-c",
                      str(ROOT / "configs" / "ppo" / "cartpole.yaml"), f"run.seed={seed}",
                      f"loop.total_timesteps={steps}", "loop.eval_every=0", "--run-dir",
                      str(run_dir)], tmp)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    parts: dict[str, float] = {}
    with open(run_dir / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "time":
                parts[row["name"]] = parts.get(row["name"], 0.0) + float(row["value"])
    return seconds, evaluation["test"]["mean_return"], parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    sides: dict[str, list[tuple[float, float]]] = {"hookforge": [], "stable-baselines3": [],
                                                   "single file": []}
    breakdown: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            seconds, ret, parts = hookforge_side(seed, args.steps, tmp)
            sides["hookforge"].append((seconds, ret))
            breakdown.append({**parts, "total": seconds})
            seconds, out = run([sys.executable, "-c", SB3, str(seed), str(args.steps)], tmp)
            sides["stable-baselines3"].append((seconds, float(out.split()[1])))
            seconds, out = run([sys.executable, str(ROOT / "benchmarks" / "ppo_single_file.py"),
                                "--seed", str(seed), "--total-timesteps", str(args.steps)], tmp)
            sides["single file"].append((seconds, float(out.split()[1])))
    print(f"PPO on CartPole-v1, {args.steps} steps, seeds {args.seeds}, whole processes "
          f"(median seconds; steps/s; final returns of 20 deterministic episodes):")
    fps = {}
    for name, results in sides.items():
        seconds = statistics.median(s for s, _ in results)
        fps[name] = args.steps / seconds
        returns = ", ".join(f"{r:.0f}" for _, r in results)
        print(f"  {name:<18} {seconds:7.1f} s  {fps[name]:7.0f} steps/s  returns {returns}")
    print(f"hookforge / stable-baselines3: {fps['hookforge'] / fps['stable-baselines3']:.2f}x "
          f"(goal 1.2x); hookforge / single file: {fps['hookforge'] / fps['single file']:.2f}x "
          f"(goal 1.0x)")
    parts = {k: statistics.median(b.get(k, 0.0) for b in breakdown)
             for k in ("env_s", "policy_s", "update_s", "total")}
    rest = parts["total"] - parts["env_s"] - parts["policy_s"] - parts["update_s"]
    print(f"hookforge's time: env stepping {parts['env_s']:.1f} s, policy forward passes and "
          f"rollout bookkeeping {parts['policy_s']:.1f} s, updates {parts['update_s']:.1f} s, the "
          f"rest (start-up, imports, record, final evaluation, figures) {rest:.1f} s")


if __name__ == "__main__":
    main()
