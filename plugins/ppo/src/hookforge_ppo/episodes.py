"""Evaluation episodes: a policy plays one episode per seed, all of them at once in a vector env
(one batched forward pass per step, not one per episode), and the results are a
:class:`~hookforge.types.Predictions` so the core's evaluate and predict paths carry them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookforge.types import Predictions

BATCH = 32  # environments played together


@dataclass
class EpisodeResults(Predictions):
    """``y_pred``: the return of each episode; with their seeds, lengths and successes."""

    seeds: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[float | None] = field(default_factory=list)
    task: str = "rl"

    def to_frame(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame({"seed": self.seeds, "return": list(self.y_pred),
                              "length": self.lengths})
        if any(s is not None for s in self.successes):
            frame["success"] = self.successes
        return frame


def play(model: Any, seeds: list[int]) -> EpisodeResults:
    """Play one episode from each seed with ``model``'s policy (deterministic unless configured
    otherwise), on raw observations normalised with the statistics saved with the model."""
    import numpy as np
    import torch

    from hookforge_ppo.envs import GymConfig

    info = model.info
    cfg = GymConfig.model_validate(info.extra["gym"])
    image = bool(info.extra.get("image"))
    returns, lengths, successes = [], [], []
    net, device = model.net, model.device
    deterministic = model.config.deterministic_eval
    net.eval()
    # evaluation draws from an RNG of its own: training's stream (and so an exact resume) must
    # not depend on when or how often the policy was evaluated
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds[0] if seeds else 0)
        for start in range(0, len(seeds), BATCH):
            chunk = seeds[start:start + BATCH]
            total, steps, success = _play_chunk(net, device, cfg, image, chunk, deterministic)
            returns += total
            lengths += steps
            successes += success
    net.train()
    return EpisodeResults(y_pred=np.asarray(returns), seeds=list(seeds), lengths=lengths,
                          successes=successes)


def _play_chunk(net: Any, device: Any, cfg: Any, image: bool, chunk: list[int],
                deterministic: bool) -> tuple[list[float], list[int], list[float | None]]:
    import numpy as np
    import torch
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from hookforge_ppo.envs import make_env

    envs = SyncVectorEnv([lambda: make_env(cfg, image) for _ in chunk],
                         autoreset_mode=AutoresetMode.SAME_STEP)  # finished ones are ignored
    obs, _ = envs.reset(seed=chunk)
    done = np.zeros(len(chunk), dtype=bool)
    total = np.zeros(len(chunk))
    steps = np.zeros(len(chunk), dtype=np.int64)
    success: list[float | None] = [None] * len(chunk)
    while not done.all():
        with torch.no_grad():
            x = net.normalize(torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device))
            action, *_ = net.act(x, deterministic=deterministic)
        obs, reward, terminated, truncated, step_info = envs.step(_to_env(action, envs))
        live = ~done
        total[live] += np.asarray(reward)[live]
        steps[live] += 1
        ended = (np.asarray(terminated) | np.asarray(truncated)) & live
        if "is_success" in step_info:
            flags = step_info["is_success"]
            present = step_info.get("_is_success", np.ones(len(chunk), dtype=bool))
            for i in np.flatnonzero(ended & present):
                success[i] = float(bool(flags[i]))
        done |= ended
    envs.close()
    return total.tolist(), steps.tolist(), success


def _to_env(action: Any, envs: Any) -> Any:
    import numpy as np
    from gymnasium import spaces

    array = action.cpu().numpy()
    space = envs.single_action_space
    if isinstance(space, spaces.Box):
        return np.clip(array, space.low, space.high)
    return array
