"""``hookforge/BabyAIText-v0``: a MiniGrid/BabyAI environment in words.

The wrapped environment's egocentric view (the 7 x 7 cells in front of the agent) becomes a
sentence naming the mission, each visible object with where it is ("a red ball 2 steps forward
and 1 step left"), the nearest wall straight ahead, and what the agent carries; actions are
the words ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle`` and
``done``, as in BabyAI-Text (Carta et al. 2023, "Grounding Large Language Models in Interactive
Environments with Online Reinforcement Learning").

Rewards: MiniGrid's own on completion (``1 - 0.9 * steps / max_steps``, a success), and per
step ``-invalid_penalty`` for a reply that is none of the action words (the turn still passes,
as MiniGrid's ``done`` action: an episode cannot stall). The expert is MiniGrid's BabyAI bot.

    env: hookforge/BabyAIText-v0
    env_kwargs: {env_id: BabyAI-GoToObj-v0}
"""

from __future__ import annotations

from typing import Any

import gymnasium
from gymnasium import spaces

from hookforge_lm.envs.shop import MAX_TEXT

ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")


def make_babyai_text(env_id: str = "BabyAI-GoToObj-v0", invalid_penalty: float = 0.05,
                     **kwargs: Any) -> BabyAIText:
    """The MiniGrid/BabyAI environment ``env_id`` (any registered one), in words."""
    import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

    return BabyAIText(gymnasium.make(env_id, **kwargs), invalid_penalty)


class BabyAIText(gymnasium.Wrapper):
    """Text observations and actions over a MiniGrid environment (module docstring)."""

    def __init__(self, env: gymnasium.Env, invalid_penalty: float = 0.05) -> None:
        super().__init__(env)
        import string

        self.invalid_penalty = invalid_penalty
        self.observation_space = spaces.Text(MAX_TEXT, min_length=0, charset=string.printable)
        self.action_space = spaces.Text(MAX_TEXT, min_length=0, charset=string.printable)
        self.bot: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        obs, info = self.env.reset(seed=seed, options=options)
        self.bot = BabyAIBot(self.env.unwrapped)
        actions = ", ".join(ACTIONS)
        return f"{describe(obs, self.env.unwrapped)} Say one of: {actions}.", info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        words = " ".join(str(action).strip().lower().rstrip(".!").split())
        valid = words in ACTIONS
        index = ACTIONS.index(words) if valid else ACTIONS.index("done")
        obs, reward, terminated, truncated, info = self.env.step(index)
        text = describe(obs, self.env.unwrapped)
        if not valid:
            text = f"I do not understand '{words[:40]}'. {text}"
            reward = float(reward) - self.invalid_penalty
        if terminated or truncated:
            info = {**info, "is_success": bool(terminated and reward > 0)}
        return text, float(reward), bool(terminated), bool(truncated), info

    def expert_action(self) -> str:
        """What MiniGrid's BabyAI bot would do now."""
        return ACTIONS[int(self.bot.replan())]


def describe(obs: dict[str, Any], world: Any) -> str:
    """The mission, the visible objects and the nearest wall ahead, and what the agent carries
    (the first observation of an episode adds the action words)."""
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, STATE_TO_IDX

    states = {index: name for name, index in STATE_TO_IDX.items()}
    image = obs["image"]
    size = image.shape[0]
    me_x, me_y = size // 2, size - 1  # the agent: bottom middle of its view, facing up
    seen, wall_ahead = [], None
    for y in range(size - 1, -1, -1):  # nearest rows first
        for x in range(size):
            kind = IDX_TO_OBJECT[int(image[x, y, 0])]
            forward, right = me_y - y, x - me_x
            if kind == "wall" and right == 0 and wall_ahead is None:
                wall_ahead = forward
            if kind in ("unseen", "empty", "floor", "wall", "agent") or (forward, right) == (0, 0):
                continue
            color = IDX_TO_COLOR[int(image[x, y, 1])]
            state = f"{states[int(image[x, y, 2])]} " if kind == "door" else ""
            seen.append(f"a {state}{color} {kind} {_where(forward, right)}")
    if wall_ahead is not None:
        seen.append(f"a wall {_steps(wall_ahead)} forward")
    carrying = getattr(world, "carrying", None)
    holding = f" You carry a {carrying.color} {carrying.type}." if carrying is not None else ""
    return f"Mission: {obs['mission']}. You see {', '.join(seen) if seen else 'nothing'}.{holding}"


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _where(forward: int, right: int) -> str:
    parts = [f"{_steps(forward)} forward"] if forward else []
    if right:
        parts.append(f"{_steps(abs(right))} {'right' if right > 0 else 'left'}")
    return " and ".join(parts)
