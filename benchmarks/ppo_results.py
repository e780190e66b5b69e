"""PPO result checks (minutes of training, so not part of `make test`):

1. CartPole-v1 with configs/ppo/cartpole.yaml (rl-zoo3's tuned settings, 100k steps) over 5
   seeds: the mean return of 20 deterministic evaluation episodes must reach 475 in at least 4.
2. Pendulum-v1 (configs/ppo/pendulum.yaml) and MiniGrid-Empty-5x5 (configs/ppo/minigrid.yaml,
   and the same with the flattened image and an MLP) against stable-baselines3 2.9 with the same
   hyperparameters and seeds (SB3: VecNormalize for Pendulum; the flattened image and MlpPolicy
   for MiniGrid, as rl-zoo3 does, since SB3's CNN needs images of at least 36x36).

    python benchmarks/ppo_results.py [--cartpole-seeds 1 2 3 4 5] [--other-seeds 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SB3 = """
import sys
import numpy as np
import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
env_id, seed = sys.argv[1], int(sys.argv[2])
if env_id.startswith("MiniGrid"):
    import minigrid
    from minigrid.wrappers import ImgObsWrapper
    wrap = lambda env: gym.wrappers.FlattenObservation(ImgObsWrapper(env))
    env = make_vec_env(env_id, n_envs=8, seed=seed, wrapper_class=wrap)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, gae_lambda=0.95, gamma=0.99, n_epochs=10,
                learning_rate=2.5e-4, clip_range=0.2, ent_coef=0.01, seed=seed, device="cpu")
    model.learn(50_000)
    test = make_vec_env(env_id, n_envs=1, seed=10_000 + seed, wrapper_class=wrap)
else:
    env = VecNormalize(make_vec_env(env_id, n_envs=4, seed=seed), gamma=0.9)
    model = PPO("MlpPolicy", env, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10,
                learning_rate=1e-3, clip_range=0.2, seed=seed, device="cpu")
    model.learn(100_000)
    test = VecNormalize(make_vec_env(env_id, n_envs=1, seed=10_000 + seed), training=False,
                        norm_reward=False)
    test.obs_rms = env.obs_rms
returns, successes = [], []
obs = test.reset()
episode = 0.0
while len(returns) < 20:
    action, _ = model.predict(obs, deterministic=True)
    obs, reward, done, info = test.step(action)
    raw = test.get_original_reward() if hasattr(test, "get_original_reward") else reward
    episode += float(raw[0])
    if done[0]:
        returns.append(episode)
        successes.append(episode > 0)
        episode = 0.0
print(f"{np.mean(returns):.3f} {np.mean(successes):.3f}")
"""


def hookforge(config: str, seed: int, tmp: str, *overrides: str) -> dict[str, float]:
    run_dir = Path(tmp) / f"{Path(config).stem}-{seed}-{len(overrides)}"
    done = subprocess.run([sys.executable, "-m", "hookforge", "-q", "train", "-c",
                           str(ROOT / "configs" / "ppo" / config), f"run.seed={seed}",
                           "data.test_episodes=20", *overrides, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"hookforge {config} failed: {done.stderr[-2000:]}")
    return json.loads((run_dir / "evaluation.json").read_text())["test"]


def sb3(env_id: str, seed: int) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", SB3, env_id, str(seed)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stable-baselines3 {env_id} failed: {done.stderr[-2000:]}")
    mean, success = done.stdout.split()[-2:]
    return float(mean), float(success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cartpole-seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--other-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs", nargs="+", choices=["cartpole", "pendulum", "minigrid"],
                        default=["cartpole", "pendulum", "minigrid"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "cartpole" in args.envs:
            cartpole(args.cartpole_seeds, tmp)
        for seed in args.other_seeds if "pendulum" in args.envs else []:
            ours = hookforge("pendulum.yaml", seed, tmp)["mean_return"]
            theirs, _ = sb3("Pendulum-v1", seed)
            print(f"Pendulum-v1 seed {seed}: hookforge {ours:.1f}, stable-baselines3 {theirs:.1f} "
                  f"(mean return of 20 episodes; -150 to -200 is solved)")
        for seed in args.other_seeds if "minigrid" in args.envs else []:
            minigrid(seed, tmp)


def cartpole(seeds: list[int], tmp: str) -> None:
    returns = [hookforge("cartpole.yaml", s, tmp)["mean_return"] for s in seeds]
    reached = sum(r >= 475 for r in returns)
    print(f"CartPole-v1, 100k steps, configs/ppo/cartpole.yaml: mean evaluation return per seed "
          f"{', '.join(f'{r:.1f}' for r in returns)}; {reached} of {len(returns)} seeds at 475 or "
          f"more (wanted: 4 of 5) -> {'PASS' if reached >= 4 else 'FAIL'}")


def minigrid(seed: int, tmp: str) -> None:
    cnn = hookforge("minigrid.yaml", seed, tmp)
    mlp = hookforge("minigrid.yaml", seed, tmp, "data.observation=flatten", "model.cnn=false")
    theirs, success = sb3("MiniGrid-Empty-5x5-v0", seed)
    print(f"MiniGrid-Empty-5x5 seed {seed}: hookforge CNN return {cnn['mean_return']:.3f} "
          f"success {cnn.get('success_rate', float('nan')):.2f}; hookforge MLP on the "
          f"flattened image {mlp['mean_return']:.3f} success "
          f"{mlp.get('success_rate', float('nan')):.2f}; stable-baselines3 MLP {theirs:.3f} "
          f"success {success:.2f}")


if __name__ == "__main__":
    main()
