"""Playing a text environment with a causal LM: whole episodes, many at once.

Every turn, the episodes still running are rendered (:func:`~hookforge_lm.text_env.render_history`)
and their replies generated in one batch; each environment then steps on its reply. The
environments are plain ``gymnasium.make`` instances stepped only while their episode runs: a
vector env would start new episodes where one ends (autoreset), while here each seed is played
exactly once and a finished episode must cost nothing more.

Two users:

- the RL loop (:func:`rollout_of_episodes`): replies sampled, every turn kept as one row of a
  :class:`~hookforge_lm.rollouts.Rollout` (the history as the prompt, the reply as the
  completion) with its episode's index and the turn's reward, so PPO's per-token rewards and
  GAE run over whole episodes (:func:`hookforge_lm.ppo_lm.token_advantages`);
- evaluation and ``hookforge predict`` (:func:`play_greedy`): replies from the model's
  generation settings (greedy by default), results as :class:`TextEpisodes` predictions that
  the ``episodes`` evaluator (and ``tasks``, for this data) scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hookforge.seeds import derive_seed
from hookforge_ppo.episodes import EpisodeResults


@dataclass
class Episode:
    """One played episode: one more observation than actions, a reward per action."""

    seed: int
    observations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool | None = None
    done: bool = False

    @property
    def total(self) -> float:
        return float(sum(self.rewards))

    def transcript(self) -> str:
        from hookforge_lm.text_env import render_history

        return render_history(self.observations, self.actions)[0].removesuffix("\n> ")


@dataclass
class TextEpisodes(EpisodeResults):
    """Evaluation episodes of a text environment: returns, lengths, successes, transcripts."""

    transcripts: list[str] = field(default_factory=list)

    def to_frame(self) -> Any:
        frame = super().to_frame()
        frame["transcript"] = self.transcripts
        return frame


Act = Callable[[Any, int, list[int]], list[str]]  # (rows of the live histories, turn, who) -> replies


def play(env_config: dict[str, Any], seeds: list[int], act: Act) -> list[Episode]:
    """One episode from each seed; ``act`` replies for the live ones each turn."""
    import pandas as pd

    from hookforge_lm.rollouts import reward_value
    from hookforge_lm.text_env import MAX_TURNS, TextEnvConfig, make_text_env, render_history, reset, step

    config = TextEnvConfig.model_validate(env_config)  # once, not once per environment
    name = config.env
    envs = [make_text_env(config) for _ in seeds]
    episodes = [Episode(int(seed)) for seed in seeds]
    try:
        for env, episode in zip(envs, episodes, strict=True):
            observation, _ = reset(env, episode.seed, name)
            episode.observations.append(observation)
        turn = 0
        while True:
            live = [i for i, e in enumerate(episodes) if not e.done]
            if not live:
                break
            rendered = [render_history(episodes[i].observations, episodes[i].actions) for i in live]
            rows = pd.DataFrame({"prompt": [r[0] for r in rendered],
                                 "messages": [r[1] for r in rendered]})
            replies = act(rows, turn, live)
            for i, reply in zip(live, replies, strict=True):
                episode = episodes[i]
                observation, reward, terminated, truncated, info = step(envs[i], reply, name)
                episode.actions.append(reply)
                episode.observations.append(observation)
                episode.rewards.append(reward_value(reward))
                if terminated or truncated or len(episode.actions) >= MAX_TURNS:
                    episode.done = True
                    episode.success = bool(info.get("is_success", False))
            turn += 1
    finally:
        for env in envs:
            env.close()
    return episodes


def rollout_of_episodes(net: Any, formatter: Any, env_config: dict[str, Any], seeds: list[int], *,
                        max_new_tokens: int, temperature: float, top_p: float, context: int,
                        seed: int, device: Any) -> tuple[Any, Any, list[Episode]]:
    """(the turns as one Rollout with ``episode`` set, each turn's reward (float64, NaN where
    unusable), the episodes) of one episode per seed, replies sampled from ``net``."""
    import numpy as np
    import torch

    from hookforge_lm.rollouts import concat_rollouts, sample_completions

    turns: list[tuple[Any, list[int]]] = []

    def act(rows: Any, turn: int, live: list[int]) -> list[str]:
        rollout = sample_completions(net, formatter, rows, 1, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_p=top_p, context=context,
                                     seed=derive_seed(seed, "turn", turn), device=device)
        turns.append((rollout, live))
        return rollout.texts

    episodes = play(env_config, seeds, act)
    pad = formatter.tokenizer.pad_token_id
    rollout = concat_rollouts([t[0] for t in turns], pad if pad is not None else formatter.eos or 0)
    owners = [i for _, live in turns for i in live]
    rewards = np.array([episodes[i].rewards[turn] for turn, (_, live) in enumerate(turns)
                        for i in live], dtype=np.float64)
    rollout.episode = torch.tensor(owners, dtype=torch.long, device=rollout.input_ids.device)
    return rollout, rewards, episodes


def play_greedy(model: Any, seeds: list[int]) -> TextEpisodes:
    """Episodes of ``model`` (a causal_lm) from ``seeds``, replies from its generation settings."""
    import numpy as np
    import torch

    from hookforge_lm.generation import generate

    settings = model.config.generation
    net, formatter, context = model.net, model.formatter(), model.context

    def act(rows: Any, turn: int, live: list[int]) -> list[str]:
        turn_settings = settings.model_copy(update={"seed": derive_seed(settings.seed, "turn", turn)})
        return [str(t) for t in generate(net, formatter, rows, turn_settings, context,
                                         model.device).y_pred]

    # evaluation samples from an RNG of its own: training's stream must not depend on it
    with torch.random.fork_rng(devices=[]):
        episodes = play(model.info.extra["text_env"], seeds, act)
    return TextEpisodes(y_pred=np.array([e.total for e in episodes]), seeds=list(seeds),
                        lengths=[len(e.actions) for e in episodes],
                        successes=[float(bool(e.success)) for e in episodes],
                        transcripts=[e.transcript() for e in episodes])
