"""PPO end to end: the record, figures, evaluate and predict through the CLI; exact resume after
SIGKILL; continuous, MultiDiscrete, Dict and MiniGrid spaces; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.record import RunRecord

ROOT = Path(__file__).resolve().parents[3]
TIMING = {"fps", "env_s", "update_s", "policy_s", "epoch_time_s"}


def _metrics(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["epoch"], r["split"], r["name"], r["value"])
            for r in RunRecord.open(run_dir).read_metrics()
            if r["name"] not in TIMING and r["split"] not in ("system", "time")]


def test_cartpole_trains_records_and_evaluates_through_the_cli(ppo_config, hookforge_cli,
                                                               hookforge_tmp):
    Path("c.yaml").write_text(yaml.safe_dump(ppo_config()))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "r")
    assert done.returncode == 0, done.stderr
    run = hookforge_tmp / "r"
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert {"mean_return", "median_return", "std_return", "min_return", "max_return",
            "mean_length"} <= set(evaluation["test"])
    assert evaluation["test"]["n_samples"] == 4
    names = {(r["split"], r["name"]) for r in RunRecord.open(run).read_metrics()}
    assert {("train", "policy_loss"), ("train", "value_loss"), ("train", "entropy"),
            ("train", "approx_kl"), ("train", "clip_fraction"), ("train", "explained_variance"),
            ("rollout", "mean_return"), ("rollout", "median_return"), ("rollout", "mean_length"),
            ("rollout", "fps"), ("val", "mean_return")} <= names
    info = RunRecord.open(run).info()
    assert info["fit"]["epochs"] == 10 and info["fit"]["steps"] == 320  # one epoch per iteration
    for figure in ("ppo_learning_curve.png", "ppo_episode_length.png", "ppo_updates.png"):
        assert (run / "figures" / figure).is_file(), figure
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "last" / "env_state.json").is_file()

    more = hookforge_cli("evaluate", "r", "--episodes", "7")
    assert more.returncode == 0, more.stderr
    assert json.loads((run / "evaluation.json").read_text())["test"]["n_samples"] == 7
    pd.DataFrame({"seed": [1, 2, 3]}).to_csv("seeds.csv", index=False)
    predicted = hookforge_cli("predict", "r", "seeds.csv", "-o", "episodes.csv")
    assert predicted.returncode == 0, predicted.stderr
    episodes = pd.read_csv("episodes.csv")
    assert list(episodes.columns) == ["seed", "return", "length"] and len(episodes) == 3
    again = hookforge_cli("predict", "r", "seeds.csv", "-o", "again.csv")
    assert again.returncode == 0, again.stderr
    assert pd.read_csv("again.csv").equals(episodes)  # seeded episodes, deterministic policy


def test_a_killed_run_resumes_bit_for_bit(ppo_config, hookforge_cli, hookforge_tmp, killer_env):
    Path("c.yaml").write_text(yaml.safe_dump(ppo_config(data={"normalize_observations": True,
                                                              "normalize_rewards": True})))
    straight = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    env = {**killer_env, "HOOKFORGE_TEST_KILL_ITERATION": "5:SIGKILL"}
    killed = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "killed", env=env)
    assert killed.returncode == -9, killed.stderr
    last = json.loads((hookforge_tmp / "killed" / "checkpoints" / "last" / "checkpoint.json").read_text())
    assert last["epoch"] == 4  # the resume point: saved every 2 iterations
    resumed = hookforge_cli("train", "--resume", "killed", env=env)
    assert resumed.returncode == 0, resumed.stderr
    for tag in ("last", "best"):
        assert (hookforge_tmp / "killed" / "checkpoints" / tag / "model.safetensors").read_bytes() == \
            (hookforge_tmp / "straight" / "checkpoints" / tag / "model.safetensors").read_bytes(), tag
    assert _metrics(hookforge_tmp / "killed") == _metrics(hookforge_tmp / "straight")


@pytest.mark.parametrize("data, model", [
    ({"env": "Pendulum-v1", "max_episode_steps": 40}, {}),                     # Box actions
    ({"env": "MiniGrid-Empty-5x5-v0", "max_episode_steps": 30}, {}),           # image, flattened
    ({"env": "MiniGrid-Empty-5x5-v0", "max_episode_steps": 30}, {"cnn": True}),  # image, CNN
])
def test_other_spaces_train_and_evaluate(data, model, ppo_config):
    result = hookforge.train(ppo_config(data=data, model=model, loop={"total_timesteps": 96,
                                                                      "eval_every": 0}))
    assert result.status == "finished"
    assert "mean_return" in result.evaluation["test"]


def test_multidiscrete_and_dict_observations(ppo_config, hookforge_register):
    import gymnasium
    import numpy as np
    from gymnasium import spaces

    class Pick(gymnasium.Env):
        """Dict-of-Box observations, MultiDiscrete actions: reward for matching the target."""

        observation_space = spaces.Dict({"target": spaces.Box(0, 1, (2,)), "noise": spaces.Box(-1, 1, (1,))})
        action_space = spaces.MultiDiscrete([2, 2])

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def _obs(self):
            self.target = self.np_random.integers(0, 2, 2)
            return {"target": self.target.astype(np.float32),
                    "noise": self.np_random.uniform(-1, 1, 1).astype(np.float32)}

        def step(self, action):
            self.t += 1
            reward = float((np.asarray(action) == self.target).sum())
            return self._obs(), reward, False, self.t >= 10, {}

    gymnasium.register("HookforgePick-v0", entry_point=lambda **_: Pick())
    result = hookforge.train(ppo_config(data={"env": "HookforgePick-v0", "max_episode_steps": None},
                                        loop={"total_timesteps": 640, "eval_every": 0}))
    assert result.evaluation["test"]["mean_return"] > 10  # better than chance (10 of 20)


@pytest.mark.parametrize("override, message", [
    ("data.env=CartPol-v1", "unknown gymnasium environment 'CartPol-v1' (did you mean 'CartPole-v1'?)"),
    ("data.num_envs=0", "data.num_envs"),
    ("loop.batch_size=24", "loop.batch_size 24 does not divide a rollout of loop.n_steps x "
                           "data.num_envs = 16 x 2 = 32 samples"),
    ("loop.learning_rate=linear_0.1", "loop.learning_rate"),
    ("data.env=Blackjack-v1", "its Tuple observations are not supported"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(override, message, ppo_config, hookforge_cli,
                                                        hookforge_tmp):
    Path("c.yaml").write_text(yaml.safe_dump(ppo_config()))
    done = hookforge_cli("train", "-c", "c.yaml", override, "--run-dir", "never")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    if "Blackjack" not in override:  # found before anything is written
        assert not (hookforge_tmp / "never").exists()


def test_nan_observations_stop_the_run_and_keep_last(ppo_config, hookforge_cli, hookforge_tmp):
    import gymnasium  # noqa: F401

    Path("nan_env.py").write_text(
        "import gymnasium, numpy as np\n"
        "from gymnasium.envs.classic_control import CartPoleEnv\n"
        "class NanAfter(CartPoleEnv):\n"
        "    calls = 0\n"
        "    def step(self, action):\n"
        "        obs, r, te, tr, info = super().step(action)\n"
        "        NanAfter.calls += 1\n"
        "        return (obs * np.nan if NanAfter.calls > 200 else obs), r, te, tr, info\n"
        "gymnasium.register('NanCartPole-v0', entry_point=NanAfter, max_episode_steps=60)\n")
    Path("c.yaml").write_text(yaml.safe_dump(ppo_config(data={"env": "nan_env:NanCartPole-v0"})))
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(hookforge_tmp), os.environ.get("PYTHONPATH", "")])}
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "r", env=env)
    assert done.returncode == 2, done.stderr
    assert "NaN or infinite observation at step" in done.stderr
    assert "training stopped and checkpoint 'last' from iteration" in done.stderr
    record = RunRecord.open(hookforge_tmp / "r")
    assert record.status == "failed" and record.verified_checkpoint("last")  # kept, intact


def test_the_optuna_plan_runs_and_prunes_on_the_evaluation_return(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("search", "-c", ROOT / "configs" / "hpo" / "ppo_cartpole.yaml",
                         "searcher.n_trials=3", "loop.total_timesteps=2048", "loop.eval_every=1",
                         "data.val_episodes=2", "data.test_episodes=2", "data.max_episode_steps=100",
                         f"run.output_dir={hookforge_tmp / 'out'}")
    assert done.returncode == 0, done.stderr
    stage = hookforge_tmp / "out" / "hpo" / "ppo-cartpole-hpo" / "search"
    trials = json.loads((stage / "trials.json").read_text())
    assert len(trials) == 3 and all(t["state"] in ("complete", "pruned") for t in trials)
    assert all("val/mean_return" in t["metrics"] for t in trials)
    assert yaml.safe_load((stage / "best_config.yaml").read_text())["loop"]["name"] == "ppo"


def test_seed_files_with_and_without_a_header(tmp_path):
    from hookforge.errors import DataError
    from hookforge_ppo.envs import read_seeds

    (tmp_path / "plain.csv").write_text("3\n4\n5\n")
    (tmp_path / "named.csv").write_text("episode,seed\na,7\nb,8\n")
    (tmp_path / "bad.csv").write_text("seed\nx\n")
    assert read_seeds(tmp_path / "plain.csv").tolist() == [3, 4, 5]  # the first line is a seed
    assert read_seeds(tmp_path / "named.csv").tolist() == [7, 8]
    with pytest.raises(DataError, match="must hold integer seeds"):
        read_seeds(tmp_path / "bad.csv")
