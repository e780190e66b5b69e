"""Multi-turn text environments: the shopping task and BabyAI in words (rewards, experts), the
`text_env` source (demonstrations rendered as the policy sees its turns), GAE over whole
episodes against a hand-computed case, PPO over episodes (a run that changes the policy, exact
resume after SIGKILL, episodes with a NaN reward dropped whole), SFT then PPO through the CLI
with evaluation and predict, and the bad inputs."""

from __future__ import annotations

import json
import math

import gymnasium
import pytest
import torch

import hookforge
from hookforge.errors import ConfigError, DataError
from hookforge.record import RunRecord

SHOP = {"name": "text_env", "env": "hookforge/TextShop-v0",
        "env_kwargs": {"catalogue_size": 4, "list_size": [1, 2]},
        "demonstrations": 40, "val_episodes": 4, "test_episodes": 8, "max_length": 160}


# -- the environments -----------------------------------------------------------------------------
def test_the_shop_rewards_each_step_and_the_checkout():
    import hookforge_lm.envs  # noqa: F401
    from hookforge_lm.envs.shop import parse_command

    env = gymnasium.make("hookforge/TextShop-v0", catalogue_size=5, list_size=2)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert first == again and first.startswith("Shopping list: ")
    shop = env.unwrapped
    wanted = sorted(shop.wanted)
    unwanted = next(i for i in shop.sold if i not in shop.wanted)
    assert env.step(f"Buy  {wanted[0].title()}.")[1:4] == (0.1, False, False)
    assert env.step(f"buy {wanted[0]}")[1] == -0.1  # one too many
    assert env.step(f"buy {unwanted}")[1] == -0.1
    observation, reward, *_ = env.step("sing")
    assert reward == -0.1 and "I do not understand 'sing'" in observation
    assert env.step("buy caviar")[0].startswith("The shop sells no caviar")
    _, reward, terminated, _, info = env.step("checkout")
    assert (reward, terminated, info["is_success"]) == (0.0, True, False)
    assert parse_command("check out") == ("checkout", "")

    successes = 0
    for seed in range(20):  # the expert: every episode a success, returns 1 + 0.1 per item
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            total += reward
            done = terminated or truncated
        successes += info["is_success"]
        assert total == pytest.approx(1.0 + 0.1 * 2)
    assert successes == 20
    with pytest.raises(ValueError, match="list_size"):
        gymnasium.make("hookforge/TextShop-v0", catalogue_size=3, list_size=[2, 4])


def test_babyai_in_words_describes_the_view_and_takes_words():
    import hookforge_lm.envs  # noqa: F401
    from hookforge_lm.envs.babyai_text import ACTIONS, describe

    env = gymnasium.make("hookforge/BabyAIText-v0", env_id="BabyAI-GoToObj-v0")
    assert isinstance(env.observation_space, gymnasium.spaces.Text)
    observation, _ = env.reset(seed=0)
    assert observation.startswith("Mission: go to the green key. You see a green key 2 steps "
                                  "forward and 1 step right, a wall 6 steps forward.")
    assert observation.endswith(f"Say one of: {', '.join(ACTIONS)}.")
    observation, reward, *_ = env.step("fly")
    assert reward == pytest.approx(-0.05) and observation.startswith("I do not understand 'fly'")
    observation, *_ = env.step("Go forward.")
    assert "a green key 1 step forward and 1 step right, a wall 5 steps forward" in observation

    # a hand-made view: a closed red door straight ahead, a blue ball 1 step left
    import numpy as np
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[:, :, 0] = OBJECT_TO_IDX["empty"]
    image[3, 4] = (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"], STATE_TO_IDX["closed"])
    image[2, 6] = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"], 0)
    image[3, 1] = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
    text = describe({"image": image, "mission": "open the red door"}, None)
    assert text == ("Mission: open the red door. You see a blue ball 1 step left, a closed red "
                    "door 2 steps forward, a wall 5 steps forward.")

    for seed in range(5):  # MiniGrid's BabyAI bot is the expert
        env.reset(seed=seed)
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(env.get_wrapper_attr("expert_action")())
            done = terminated or truncated
        assert info["is_success"] and reward > 0


# -- the source ------------------------------------------------------------------------------------
def test_demonstrations_are_the_turns_the_policy_will_see(lm_config):
    from hookforge_lm.text_env import render_history

    run = hookforge.Run.from_config(lm_config(data=SHOP))
    dataset = run.data.load(run)
    train, test = dataset.split("train"), dataset.split("test")
    assert dataset.info.task == "generation" and dataset.info.extra["text_env"]["env"] == SHOP["env"]
    assert len(test) == 8 and test.X["seed"].nunique() == 8 and (test.X["turn"] == 0).all()
    # replaying an expert episode reproduces its rows: history as the prompt, reply as completion
    first = train.X[train.X["seed"] == train.X["seed"].iloc[0]]
    env = gymnasium.make(SHOP["env"], **SHOP["env_kwargs"])
    observation, _ = env.reset(seed=int(first["seed"].iloc[0]))
    observations, actions = [observation], []
    for k, (_, row) in enumerate(first.iterrows()):
        transcript, messages = render_history(observations, actions)
        assert row["prompt"] == transcript and row["messages"] == messages
        reply = train.y[first.index[k]]
        assert reply == env.unwrapped.expert_action()
        observations.append(env.step(reply)[0])
        actions.append(reply)
    assert actions[-1] == "checkout"
    assert transcript.endswith("\n> ") and messages[-1]["role"] == "user"
    # the same seeds give the same rows
    run = hookforge.Run.from_config(lm_config(data=SHOP))
    again = run.data.load(run)
    assert again.split("train").X["prompt"].tolist() == train.X["prompt"].tolist()


class NoExpertEnv(gymnasium.Env):
    """A text environment without an expert whose second reward is NaN."""

    def __init__(self, always=False):
        self.observation_space = gymnasium.spaces.Text(100)
        self.action_space = gymnasium.spaces.Text(100)
        self.turn, self.always = 0, always

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.turn = 0
        self.broken = bool(self.np_random.integers(2)) or self.always
        return "Say anything", {}

    def step(self, action):
        self.turn += 1
        reward = math.nan if self.broken and self.turn == 2 else 1.0
        return "Again", reward, self.turn >= 3, False, {"is_success": True}


@pytest.fixture
def no_expert_env():
    if "test/NoExpert-v0" not in gymnasium.registry:
        gymnasium.register("test/NoExpert-v0", entry_point=NoExpertEnv)
    return {**SHOP, "env": "test/NoExpert-v0", "env_kwargs": {}}


def test_bad_environments_are_one_line_errors(no_expert_env, lm_config,
                                              hookforge_cli, hookforge_tmp):
    with pytest.raises(DataError, match=r"data\.env test/NoExpert-v0 has no expert_action\(\).*"
                                        r"data\.demonstrations=0"):
        run = hookforge.Run.from_config(lm_config(data=no_expert_env))
        run.data.load(run)
    with pytest.raises(ConfigError, match=r"data\.env_kwargs: hookforge/TextShop-v0 refused"):
        run = hookforge.Run.from_config(lm_config(data={**SHOP, "env_kwargs": {"shelves": 3}}))
        run.data.load(run)
    import yaml

    config = lm_config(data={**SHOP, "env": "CartPole-v1", "env_kwargs": {}})
    (hookforge_tmp / "c.yaml").write_text(yaml.safe_dump(config))
    result = hookforge_cli("train", "-c", str(hookforge_tmp / "c.yaml"))
    assert result.returncode == 2
    assert "data.env CartPole-v1: its observations are Box, not text" in result.stderr
    assert "Traceback" not in result.stderr
    result = hookforge_cli("train", "-c", str(hookforge_tmp / "c.yaml"), "data.env=Shop-v9")
    assert result.returncode == 2 and "Traceback" not in result.stderr


# -- GAE over episodes ------------------------------------------------------------------------------
def test_gae_runs_over_the_turns_of_an_episode_by_hand():
    from hookforge_lm.ppo_lm import token_advantages

    # rows 0 and 2: turns 1 and 2 of episode 7; row 1: a one-turn episode 3
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    rewards = torch.tensor([[0.0, 0.1, 5.0], [0.4, 5.0, 5.0], [0.0, 0.0, 1.0]])  # 5.0: padding
    values = torch.tensor([[0.5, 0.6, 9.0], [0.2, 9.0, 9.0], [0.7, 0.8, 0.9]])
    episode = torch.tensor([7, 3, 7])
    gamma, lam = 0.9, 0.5
    advantages, returns = token_advantages(rewards, values, mask, gamma, lam, episode)
    # episode 7 laid end to end: r = [0, .1, 0, 0, 1], v = [.5, .6, .7, .8, .9], its end last
    r, v = [0.0, 0.1, 0.0, 0.0, 1.0], [0.5, 0.6, 0.7, 0.8, 0.9]
    expected, running = [0.0] * 5, 0.0
    for t in reversed(range(5)):
        following = v[t + 1] if t < 4 else 0.0
        running = r[t] + gamma * following - v[t] + (gamma * lam * running if t < 4 else 0.0)
        expected[t] = running
    a = expected
    torch.testing.assert_close(advantages, torch.tensor([[a[0], a[1], 0.0], [0.4 - 0.2, 0.0, 0.0],
                                                         [a[2], a[3], a[4]]]))
    torch.testing.assert_close(returns, (advantages + values) * mask)
    # every row an episode of its own: the same as the single-completion GAE
    torch.manual_seed(0)
    rewards, values = torch.randn(4, 5), torch.randn(4, 5)
    mask = (torch.arange(5)[None, :] < torch.tensor([[5], [2], [4], [1]])).float()
    single = token_advantages(rewards, values, mask, 0.95, 0.9)
    each = token_advantages(rewards, values, mask, 0.95, 0.9, torch.arange(4))
    for x, y in zip(single, each, strict=True):
        torch.testing.assert_close(x, y)


def test_an_episode_with_a_nan_reward_is_dropped_whole():
    import numpy as np

    from hookforge_lm.rl import RLTrainer
    from hookforge_lm.rollouts import Rollout

    rollout = Rollout(torch.zeros(5, 2), torch.ones(5, 2), 1, torch.ones(5, 1), [""] * 5, None,
                      torch.tensor([0, 1, 2, 0, 1]))
    keep = RLTrainer.usable(None, rollout, np.array([1.0, 1.0, 1.0, math.nan, 0.0]))
    assert keep.tolist() == [False, True, True, False, True]


# -- PPO over episodes --------------------------------------------------------------------------------
@pytest.fixture
def episodes_config(lm_config):
    def make(data=None, **loop):
        config = lm_config(data={**SHOP, **(data or {})},
                           model={"tokenizer": {"train": {"kind": "bytelevel", "vocab_size": 400}},
                                  "generation": {"max_new_tokens": 5}})
        config["loop"] = {"name": "ppo_lm", "num_rollouts": 3, "rollout_batch_size": 4,
                          "minibatch_size": 6, "ppo_epochs": 2, "lr": 0.003, "max_new_tokens": 5,
                          "device": "cpu", **loop}
        return config
    return make


def test_ppo_over_episodes_changes_the_policy_and_scores_episodes(episodes_config):
    result = hookforge.train(episodes_config(num_rollouts=2, data={"max_episode_steps": 4}))
    assert result.status == "finished" and result.fit.epochs == 2
    rows = RunRecord.open(result.run_dir).read_metrics()
    train = [r for r in rows if r["split"] == "train"]
    names = {r["name"] for r in train}
    assert {"reward_mean", "success_rate", "episode_length", "turns", "kl", "value_loss",
            "clip_fraction", "entropy", "dropped"} <= names
    lengths = [r["value"] for r in train if r["name"] == "episode_length"]
    turns = [r["value"] for r in train if r["name"] == "turns"]
    assert all(1 <= n <= 4 for n in lengths) and turns == [4 * n for n in lengths]
    kl = [r["value"] for r in train if r["name"] == "kl"]
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and abs(kl[1]) > 1e-5  # it moved off the reference
    test = result.evaluation["test"]
    assert test["episodes"] == 8 and {"mean_return", "success_rate_low", "success_rate_high"} <= set(test)
    episodes = [json.loads(line) for line in
                (result.run_dir / "generations" / "test.jsonl").read_text().splitlines()]
    assert len(episodes) == 8 and all(e["transcript"].startswith("Shopping list:") for e in episodes)
    assert all(1 <= e["length"] <= 4 for e in episodes)


def test_a_killed_ppo_episodes_run_resumes_bit_for_bit(episodes_config, killed_and_straight):
    (killed, straight), last = killed_and_straight(episodes_config(data={"max_episode_steps": 3}))
    assert killed == straight
    for weights in ("model.safetensors", "value_head.safetensors"):
        files = last(weights)
        assert files[0] == files[1], weights


def test_nan_rewards_drop_their_episode_and_grpo_is_refused(episodes_config, no_expert_env):
    data = {**no_expert_env, "demonstrations": 0}
    result = hookforge.train(episodes_config(num_rollouts=1, rollout_batch_size=8, data=data))
    assert result.status == "finished"
    rows = {r["name"]: r["value"] for r in RunRecord.open(result.run_dir).read_metrics()
            if r["split"] == "train"}
    broken = sum(1 for i in range(8) if _broken(result, i))
    assert 0 < broken < 8 and rows["dropped"] == broken
    assert rows["reward_mean"] == 3.0 and rows["episode_length"] == 3.0
    from hookforge.errors import UsageError

    always = {**data, "env_kwargs": {"always": True}}
    with pytest.raises(UsageError, match=r"the environment gave no usable reward .* in 2 rollouts "
                                         r"in a row .* checkpoint 'last' is kept"):
        hookforge.train(episodes_config(max_bad_rollouts=2, data=always))
    config = episodes_config(data=data)
    config["loop"] = {"name": "grpo", "num_rollouts": 1, "device": "cpu"}
    with pytest.raises(ConfigError, match=r"loop 'grpo' learns from single completions; .* "
                                          r"train with loop 'ppo_lm'"):
        hookforge.train(config)


def _broken(result, i):
    from hookforge.seeds import derive_seed

    env = NoExpertEnv()
    env.reset(seed=derive_seed(hookforge.Run.open(result.run_dir).seed, "episode", 0, i))
    return env.broken


SMALL = ["sft.data.demonstrations=40", "sft.loop.epochs=2", "sft.data.val_episodes=4",
         "sft.data.test_episodes=8", "ppo.loop.num_rollouts=2", "ppo.loop.rollout_batch_size=4",
         "ppo.data.val_episodes=4", "ppo.data.test_episodes=8"]


def test_configs_text_shop_sft_then_ppo_then_predict_through_the_cli(hookforge_cli, hookforge_tmp):
    from pathlib import Path

    import pandas as pd
    from safetensors.torch import load_file

    from hookforge.export import verify

    pipeline = Path(__file__).resolve().parents[3] / "configs" / "lm" / "text_shop.yaml"
    done = hookforge_cli("pipeline", "-c", pipeline, "--output-dir", "shop", *SMALL, timeout=900)
    assert done.returncode == 0, done.stderr
    stages = json.loads((hookforge_tmp / "shop" / "pipeline.json").read_text())["stages"]
    sft, ppo = (Path(stages[name]["outputs"]["run_dir"]) for name in ("sft", "ppo"))
    evaluation = json.loads((sft / "evaluation.json").read_text())
    assert evaluation["test"]["episodes"] == 8.0 and "success_rate_high" in evaluation["test"]
    before = load_file(str(sft / "checkpoints" / "best" / "merged" / "model.safetensors"))
    after = load_file(str(ppo / "checkpoints" / "last" / "model.safetensors"))
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert moved, "PPO left the SFT weights as they were"
    verify(Path(stages["export"]["outputs"]["dir"]))

    pd.DataFrame({"seed": [11, 12, 11]}).to_csv(hookforge_tmp / "seeds.csv", index=False)
    done = hookforge_cli("predict", ppo, str(hookforge_tmp / "seeds.csv"), "-o",
                         str(hookforge_tmp / "episodes.csv"))
    assert done.returncode == 0, done.stderr
    played = pd.read_csv(hookforge_tmp / "episodes.csv")
    assert list(played["seed"]) == [11, 12, 11] and {"return", "length", "transcript"} <= set(played)
    assert played["transcript"][0] == played["transcript"][2]  # greedy: one seed, one episode
    assert played["transcript"][0].startswith("Shopping list:")
    done = hookforge_cli("evaluate", ppo)
    assert done.returncode == 0, done.stderr
    done = hookforge_cli("compare", sft, ppo)
    assert done.returncode == 0 and "success_rate" in done.stdout, done.stderr
