"""Fixtures of the hookforge-ppo tests: tiny PPO configs that train in seconds on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def killer_env(hookforge_installed):
    return hookforge_installed({"hookforge.plugins": {"killer": "killer:IterationKiller"}}, [HERE])


@pytest.fixture
def ppo_config(tiny_config):
    """CartPole with a short time limit, 2 envs, 10 iterations of 32 steps."""
    def make(data=None, model=None, loop=None, **sections):
        return tiny_config(
            data={"name": "gym", "env": "CartPole-v1", "num_envs": 2, "max_episode_steps": 60,
                  "val_episodes": 3, "test_episodes": 4, **(data or {})},
            model={"name": "actor_critic", "hidden": [16], **(model or {})},
            loop={"name": "ppo", "total_timesteps": 320, "n_steps": 16, "batch_size": 16,
                  "n_epochs": 2, "learning_rate": "lin_0.003", "eval_every": 3,
                  "checkpoint_every": 2, **(loop or {})},
            evaluators=["episodes"], **sections)
    return make
