"""The ``text_env`` data source: a multi-turn text environment (any gymnasium id whose
observations and actions are text, see :mod:`hookforge_lm.envs`) as the data of a causal LM.

What the policy sees on each turn is the episode so far, rendered by :func:`render_history`
(one function, so supervised rows, RL rollouts and evaluation episodes read alike): as a chat
(user = the environment, assistant = the policy) where the tokenizer has a chat template, else
as a transcript of observations each followed by ``> `` and the reply.

The splits (the dataset's task is ``generation``, so ``causal_lm`` and the supervised loop take
it as they take prompts):

- ``train``: every turn of ``demonstrations`` expert episodes (the environment's
  ``expert_action``) as a prompt (the history) and a completion (the expert's reply), for
  supervised fine-tuning before RL; without demonstrations, the first observations of as many
  episodes as ``val`` has, with empty completions (they only train a tokenizer);
- ``val``, ``test``: one row per episode, its ``seed`` and first observation (and the expert's
  first reply as the completion, so a supervised loop's validation loss has a target).

Predicting a row with a ``seed`` plays that whole episode (``causal_lm`` with its generation
settings), so ``hookforge evaluate`` reports returns and success rates with intervals, and
``hookforge predict RUN_DIR seeds.csv`` writes each episode's return and transcript.
The RL loop ``ppo_lm`` plays its own episodes, from seeds derived from the run's seed and the
rollout, and learns from every turn (:mod:`hookforge_lm.episodes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import ConfigError, DataError
from hookforge.seeds import derive_seed
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run

SOURCE = "text_env"
MAX_TURNS = 1000  # an expert episode longer than this is a loop, not a demonstration


class TextEnvConfig(ComponentConfig):
    env: str = Field(..., description="a gymnasium id with text observations and actions, e.g. "
                                      "hookforge/TextShop-v0 or hookforge/BabyAIText-v0")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of "
                                                                         "gymnasium.make")
    max_episode_steps: int | None = Field(None, ge=1, description="turns per episode at most "
                                                                  "(default: the env's limit)")
    demonstrations: int = Field(200, ge=0, description="expert episodes whose turns form the "
                                                       "train split (0: none)")
    val_episodes: int = Field(20, ge=1, description="episodes of the val split")
    test_episodes: int = Field(100, ge=1, description="episodes of the test split")
    max_length: int = Field(512, ge=8, description="tokens of a turn's history and reply together "
                                                   "(a longer history loses its start)")
    data_seed: int | None = Field(None, description="seed of the episodes (default run.seed)")


# -- what the policy sees -------------------------------------------------------------------------
def render_history(observations: list[str], actions: list[str]) -> tuple[str, list[dict[str, str]]]:
    """(transcript, chat messages) of an episode so far: one more observation than actions.
    The formatter uses the messages where the tokenizer has a chat template, else the transcript."""
    transcript = "".join(f"{o}\n> {a}\n" for o, a in zip(observations, actions, strict=False))
    transcript += f"{observations[-1]}\n> "
    messages: list[dict[str, str]] = []
    for o, a in zip(observations, actions, strict=False):
        messages += [{"role": "user", "content": o}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": observations[-1]})
    return transcript, messages


# -- the environment ------------------------------------------------------------------------------
def ensure_text_env(env_id: str) -> None:
    """Register hookforge's text environments and the package of ``package:EnvId``, check the id."""
    import hookforge_lm.envs  # noqa: F401  (registers hookforge/TextShop-v0, hookforge/BabyAIText-v0)
    from hookforge_ppo.envs import ensure_registered

    ensure_registered(env_id)


def make_text_env(cfg: TextEnvConfig) -> Any:
    """One environment of the config, checked to speak text."""
    import gymnasium
    from gymnasium import spaces

    ensure_text_env(cfg.env)
    options = dict(cfg.env_kwargs)
    if cfg.max_episode_steps is not None:
        options["max_episode_steps"] = cfg.max_episode_steps
    try:
        # no passive checker: an observation may quote the policy's reply, whose characters
        # need not be in the Text space's charset, and that is no error of the environment
        env = gymnasium.make(cfg.env.rpartition(":")[2], disable_env_checker=True, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.env_kwargs: {cfg.env} refused them ({exc})") from None
    for what, space in (("observations", env.observation_space), ("actions", env.action_space)):
        if not isinstance(space, spaces.Text):
            env.close()
            raise DataError(f"data.env {cfg.env}: its {what} are {type(space).__name__}, not "
                            f"text (gymnasium.spaces.Text); use the 'gym' source with an "
                            f"actor_critic model for such environments")
    return env


def expert(env: Any) -> Any:
    """The environment's ``expert_action`` (through its wrappers), or None."""
    try:
        return env.get_wrapper_attr("expert_action")
    except AttributeError:
        return None


class TextEnvSource(DataSource):
    """A multi-turn text environment (see the module docstring)."""

    Config = TextEnvConfig

    def preflight(self, run: Run) -> None:
        make_text_env(self.config).close()

    def load(self, run: Run) -> Dataset:
        c = self.config
        seed = c.data_seed if c.data_seed is not None else run.seed
        env = make_text_env(c)
        act = expert(env)
        if c.demonstrations and act is None:
            env.close()
            raise DataError(f"data.env {c.env} has no expert_action() to demonstrate with; set "
                            f"data.demonstrations=0 (RL only)")
        try:
            train = self._rows(env, act, episode_seeds(seed, "train", c.demonstrations or
                                                       c.val_episodes),
                               every_turn=bool(c.demonstrations))
            val, test = (self._rows(env, act, episode_seeds(seed, purpose, n), every_turn=False)
                         for purpose, n in (("val", c.val_episodes), ("test", c.test_episodes)))
        finally:
            env.close()
        info = DatasetInfo(task="generation", extra={
            "max_length": c.max_length, "group_by_length": False, "source": SOURCE,
            SOURCE: c.model_dump(mode="json")})
        splits = {"train": _split(train), "val": _split(val), "test": _split(test)}
        return Dataset(info=info, splits=splits)

    def _rows(self, env: Any, act: Any, seeds: list[int], *, every_turn: bool) -> list[dict[str, Any]]:
        """Rows of the expert's episodes: every turn, or only each episode's first."""
        rows = []
        for seed in seeds:
            observation, _ = reset(env, seed, self.config.env)
            observations, actions = [observation], []
            while True:
                reply = act() if act is not None else ""
                transcript, messages = render_history(observations, actions)
                rows.append({"prompt": transcript, "messages": messages, "completion": reply,
                             "seed": seed, "turn": len(actions)})
                if not every_turn:
                    break
                if len(actions) >= MAX_TURNS:
                    raise DataError(f"data.env {self.config.env}: the expert's episode from seed "
                                    f"{seed} did not end in {MAX_TURNS} turns; set "
                                    f"data.max_episode_steps")
                observation, _, terminated, truncated, _ = step(env, reply, self.config.env)
                observations.append(observation)
                actions.append(reply)
                if terminated or truncated:
                    break
        return rows

    def read_inputs(self, run: Run, path: Path) -> Any:
        """``hookforge predict RUN_DIR seeds.csv``: one episode per seed (a ``seed`` column, or
        one integer per line)."""
        import pandas as pd

        from hookforge_ppo.envs import read_seeds

        return pd.DataFrame({"seed": [int(s) for s in read_seeds(path)], "prompt": ""})


def episode_seeds(seed: int, purpose: str, count: int) -> list[int]:
    """The episodes of a split: seeds in a namespace of their own (not hookforge-ppo's
    ``env_seeds``), so the recorded results of text-environment runs keep their episodes."""
    return [derive_seed(seed, SOURCE, purpose, i) for i in range(count)]


def reset(env: Any, seed: int, name: str) -> tuple[str, dict[str, Any]]:
    try:
        observation, info = env.reset(seed=int(seed))
    except Exception as exc:  # the environment's own code failed: name it
        raise DataError(f"data.env {name}: reset(seed={seed}) failed "
                        f"({type(exc).__name__}: {exc})") from None
    return str(observation), info


def step(env: Any, action: str, name: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
    try:
        observation, reward, terminated, truncated, info = env.step(action)
    except Exception as exc:
        raise DataError(f"data.env {name}: step({action[:40]!r}) failed "
                        f"({type(exc).__name__}: {exc})") from None
    return str(observation), reward, bool(terminated), bool(truncated), info


def _split(rows: list[dict[str, Any]]) -> Split:
    import pandas as pd

    from hookforge_lm.data import frame_split

    frame = pd.DataFrame(rows)
    frame["data"] = [json.dumps({"seed": int(s), "turn": int(t)})
                     for s, t in zip(frame["seed"], frame["turn"], strict=True)]
    return frame_split(frame)

