"""The ``gym`` data source: a gymnasium environment, vectorised and seeded per env.

The "data" of a reinforcement-learning run is an environment, not rows: the source checks the
environment id and its spaces, and returns a :class:`~hookforge.types.Dataset` whose splits are
*episode seeds*: ``val`` the episodes the loop evaluates on while training, ``test`` those of the
final evaluation (fresh seeds, never used for training). A model predicts a split by playing
those episodes, so ``hookforge evaluate`` and the ``episodes`` evaluator go through the same
hooks as every other task.

Environment state and resume: :func:`snapshot` records every plain attribute (numbers, arrays,
numpy generators, running statistics) of each wrapper and of each sub-environment of a
synchronous vector env, as JSON; :func:`restore` puts them back, so a resumed CartPole run is
bit-identical to an uninterrupted one. An environment holding other objects (MiniGrid's grid of
world objects) cannot be recorded without pickle, which hookforge does not use: such a run
resumes with fresh episodes from seeds derived from the iteration, and says so.
"""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import ConfigError, DataError, did_you_mean
from hookforge.seeds import derive_seed
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run

TASK = "rl"


class GymConfig(ComponentConfig):
    env: str = Field(..., description="a registered gymnasium environment id, e.g. CartPole-v1")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of "
                                                                         "gymnasium.make")
    num_envs: int = Field(8, ge=1, description="environments stepped together (a vector env)")
    vectorization: Literal["sync", "async"] = Field(
        "sync", description="sync (one process; resumable bit for bit) or async (a process per env)")
    normalize_observations: bool = Field(False, description="gymnasium's running observation "
                                                            "normalisation (stats saved with the model)")
    normalize_rewards: bool = Field(False, description="gymnasium's running return normalisation")
    clip_observations: float | None = Field(None, gt=0, description="clip (normalised) observations "
                                                                    "to [-x, x]")
    clip_rewards: float | None = Field(None, gt=0, description="clip (normalised) rewards to [-x, x]")
    gamma: float = Field(0.99, gt=0, le=1, description="discount of the reward normalisation")
    observation: Literal["auto", "flatten", "image"] = Field(
        "auto", description="auto: an image observation (MiniGrid) as an image, others flattened")
    max_episode_steps: int | None = Field(None, ge=1, description="override the env's time limit")
    val_episodes: int = Field(10, ge=1, description="episodes of each evaluation while training")
    test_episodes: int = Field(20, ge=1, description="episodes of the final evaluation (and of "
                                                     "`hookforge evaluate`; --episodes N sets it)")

    @model_validator(mode="after")
    def _vector(self) -> GymConfig:
        if self.env_kwargs.get("render_mode") not in (None, "rgb_array"):
            raise ValueError("env_kwargs.render_mode: only rgb_array (or none) can run headless")
        return self


def ensure_registered(env_id: str) -> None:
    """Import the package that registers ``env_id``'s family (MiniGrid, BabyAI) and check the id,
    with a did-you-mean over gymnasium's registry."""
    import importlib

    import gymnasium

    module, sep, name = env_id.rpartition(":")
    if sep:  # gymnasium's "package:EnvId": the package registers the environment when imported
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"data.env {env_id}: cannot import '{module}' ({exc})") from None
        env_id = name
    if env_id.startswith(("MiniGrid-", "BabyAI-")):
        try:
            import minigrid  # noqa: F401  (registers its environments on import)
        except ImportError:
            raise ConfigError(f"data.env {env_id}: needs the minigrid package "
                              f"(pip install minigrid)") from None
    if env_id not in gymnasium.registry:
        known = list(gymnasium.registry)
        raise ConfigError(f"data.env: unknown gymnasium environment '{env_id}'"
                          f"{did_you_mean(env_id, known)}; e.g. {', '.join(sorted(known)[:6])}...")


def make_env(cfg: GymConfig, image: bool, training: bool = False) -> Any:
    """One environment with the observation wrappers the policy expects. For training (inside
    each env of the vector env, so the final observation of an episode is transformed like the
    others): episode statistics on the raw rewards, then the normalisation and clipping asked for.
    Evaluation envs are raw: the model normalises with the statistics saved with it."""
    import gymnasium
    import numpy as np
    from gymnasium import spaces, wrappers

    kwargs = dict(cfg.env_kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        env = gymnasium.make(cfg.env, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"data.env_kwargs: {cfg.env} does not take them ({exc})") from None
    observation = env.observation_space
    if isinstance(observation, spaces.Dict) and "image" in observation.spaces:
        from minigrid.wrappers import ImgObsWrapper

        env = ImgObsWrapper(env) if image else wrappers.FlattenObservation(ImgObsWrapper(env))
    elif not (isinstance(observation, spaces.Box) and len(observation.shape) == 1) \
            and _flattenable(observation) and not image:
        env = wrappers.FlattenObservation(env)
    if not training:
        return env
    env = wrappers.RecordEpisodeStatistics(env)
    if isinstance(env.action_space, spaces.Box):
        env = wrappers.ClipAction(env)
    if cfg.normalize_observations:
        env = wrappers.NormalizeObservation(env)
    if cfg.clip_observations is not None:
        bound = cfg.clip_observations
        env = wrappers.TransformObservation(env, lambda obs: np.clip(obs, -bound, bound),
                                            env.observation_space)
    if cfg.normalize_rewards:
        env = wrappers.NormalizeReward(env, gamma=cfg.gamma)
    if cfg.clip_rewards is not None:
        env = wrappers.ClipReward(env, -cfg.clip_rewards, cfg.clip_rewards)
    return env


def _flattenable(space: Any) -> bool:
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return True
    if isinstance(space, spaces.Dict):
        return all(isinstance(s, spaces.Box) for s in space.spaces.values())
    return False


def make_vector_env(cfg: GymConfig, seed: int, image: bool) -> Any:
    """``num_envs`` training environments stepped together, each reset at the step its episode
    ends (the final observation in ``info["final_obs"]``, for the truncation bootstrap)."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    factories = [lambda: make_env(cfg, image, training=True) for _ in range(cfg.num_envs)]
    kind = SyncVectorEnv if cfg.vectorization == "sync" else AsyncVectorEnv
    envs = kind(factories, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.action_space.seed(seed)
    return envs


def observation_stats(envs: Any) -> tuple[Any, Any] | None:
    """The running observation mean and variance over every training env (their
    NormalizeObservation statistics pooled), or None without normalisation."""
    import numpy as np

    stats = []
    for obj in _chain(envs):
        if type(obj).__name__ == "NormalizeObservation":
            stats.append((obj.obs_rms.count, obj.obs_rms.mean, obj.obs_rms.var + obj.epsilon))
    if not stats:
        return None
    counts = np.asarray([c for c, _, _ in stats], dtype=np.float64)
    means = np.stack([m for _, m, _ in stats])
    variances = np.stack([v for _, _, v in stats])
    weights = counts / counts.sum()
    mean = np.tensordot(weights, means, axes=1)
    var = np.tensordot(weights, variances + (means - mean) ** 2, axes=1)
    return mean, var


def env_seeds(base: int, count: int, purpose: str) -> list[int]:
    """Seeds of ``count`` environments or episodes, each its own, derived from ``base``."""
    return [derive_seed(base, "env", purpose, i) for i in range(count)]


class GymSource(DataSource):
    """A gymnasium environment (any registered id), vectorised with gymnasium's own vector envs."""

    Config = GymConfig

    def preflight(self, run: Run) -> None:
        ensure_registered(self.config.env)

    def load(self, run: Run) -> Dataset:
        import numpy as np

        cfg = self.config
        ensure_registered(cfg.env)
        try:
            probe = make_env(cfg, image=cfg.observation != "flatten")
            image = cfg.observation != "flatten" and len(probe.observation_space.shape or ()) == 3
            if cfg.observation == "image" and not image:
                raise ConfigError(f"data.observation=image: {cfg.env}'s observations are not "
                                  f"images")
            if not image and cfg.observation != "flatten":
                probe.close()
                probe = make_env(cfg, image=False)
            probe.reset(seed=derive_seed(run.seed, "env", "probe"))
        except (ConfigError, DataError):
            raise
        except Exception as exc:  # the environment's own code failed: name it
            raise DataError(f"data.env {cfg.env}: the environment failed to reset "
                            f"({type(exc).__name__}: {exc})") from None
        observation, action = probe.observation_space, probe.action_space
        probe.close()
        from gymnasium import spaces

        if not isinstance(observation, spaces.Box):
            raise DataError(f"data.env {cfg.env}: its {type(observation).__name__} observations "
                            f"are not supported (Box, a Dict of Box, or MiniGrid images)")
        info = DatasetInfo(task=TASK, extra={
            "env": cfg.env, "gym": cfg.model_dump(mode="json"), "image": image,
            "observation_space": describe_space(observation),
            "action_space": describe_space(action)})
        splits = {"val": Split(np.asarray(env_seeds(run.seed, cfg.val_episodes, "val"))),
                  "test": Split(np.asarray(env_seeds(run.seed, cfg.test_episodes, "test")))}
        return Dataset(info=info, splits=splits)

    def read_inputs(self, run: Run, path: Path) -> Any:
        """``hookforge predict RUN_DIR seeds.csv``: one episode per seed."""
        return read_seeds(path)


def read_seeds(path: Path) -> Any:
    """Episode seeds from a CSV with a ``seed`` column, or with one integer per line."""
    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_csv(path)
        if "seed" not in frame.columns:  # no header: every line is a seed
            frame = pd.read_csv(path, header=None)
    except Exception as exc:
        raise DataError(f"{path}: cannot read it as a CSV of episode seeds ({exc})") from None
    column = "seed" if "seed" in frame.columns else frame.columns[0]
    try:
        seeds = frame[column].astype(np.int64).to_numpy()
    except (TypeError, ValueError):
        raise DataError(f"{path}: the '{column}' column must hold integer seeds") from None
    if len(seeds) == 0:
        raise DataError(f"{path}: no episode seeds")
    return seeds


def describe_space(space: Any) -> dict[str, Any]:
    """A space as plain data (dataset.json): its kind, shape, bounds or counts."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"kind": "multi_discrete", "nvec": [int(n) for n in space.nvec.ravel()]}
    if isinstance(space, spaces.Box):
        return {"kind": "box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound(space.low), "high": _bound(space.high)}
    return {"kind": type(space).__name__}


def _bound(values: Any) -> Any:
    import numpy as np

    flat = np.asarray(values, dtype=np.float64).ravel()
    return [v if math.isfinite(v) else (1e30 if v > 0 else -1e30) for v in flat.tolist()]


# ---------------------------------------------------------------------------------------------
# Environment state as plain data (see the module docstring)
# ---------------------------------------------------------------------------------------------

_STATIC = {"env", "envs", "env_fns", "_saved_kwargs", "spec", "_cached_spec", "metadata",
           "_metadata", "render_mode", "_action_space", "_observation_space", "action_space",
           "observation_space", "single_action_space", "single_observation_space",
           "func", "vector_func", "autoreset_mode", "copy",
           "observation_mode", "_np_random_seed"}


def _chain(obj: Any) -> list[Any]:
    """A vector env's wrappers, the vector env, and each sub-environment's wrapper chain."""
    objects, current = [], obj
    while current is not None:
        objects.append(current)
        current = getattr(current, "env", None) if hasattr(current, "env") else None
    last = objects[-1]
    for sub in getattr(last, "envs", []) or []:
        current = sub
        while current is not None:
            objects.append(current)
            current = getattr(current, "env", None)
    return objects


def _encode(value: Any) -> tuple[bool, Any]:
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, np.generic):
        return True, {"__np__": value.dtype.str, "value": value.item()}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return False, None
        return True, {"__ndarray__": value.dtype.str, "shape": list(value.shape),
                      "data": value.ravel().tolist()}
    if isinstance(value, np.random.Generator):
        return True, {"__generator__": value.bit_generator.state}
    if type(value).__name__ == "RunningMeanStd":
        return True, {"__rms__": {k: _encode(getattr(value, k))[1] for k in ("mean", "var", "count")}}
    if isinstance(value, __import__("collections").deque):
        items = [_encode(v) for v in value]
        if all(ok for ok, _ in items):
            return True, {"__deque__": [v for _, v in items], "maxlen": value.maxlen}
        return False, None
    if isinstance(value, (list, tuple)):
        items = [_encode(v) for v in value]
        if all(ok for ok, _ in items):
            return True, {"__seq__": type(value).__name__, "items": [v for _, v in items]}
        return False, None
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _encode(v) for k, v in value.items()}
        if all(ok for ok, _ in items.values()):
            return True, {"__dict__": {k: v for k, (_, v) in items.items()}}
    return False, None


def _decode(value: Any, current: Any = None) -> Any:
    import numpy as np

    if not isinstance(value, dict):
        return value
    if "__np__" in value:
        return np.dtype(value["__np__"]).type(value["value"])
    if "__ndarray__" in value:
        return np.asarray(value["data"], dtype=np.dtype(value["__ndarray__"])).reshape(value["shape"])
    if "__generator__" in value:
        generator = current if isinstance(current, np.random.Generator) else \
            np.random.Generator(getattr(np.random, value["__generator__"]["bit_generator"])())
        generator.bit_generator.state = value["__generator__"]
        return generator
    if "__rms__" in value:
        for key, inner in value["__rms__"].items():
            setattr(current, key, _decode(inner))
        return current
    if "__deque__" in value:
        from collections import deque

        return deque((_decode(v) for v in value["__deque__"]), maxlen=value["maxlen"])
    if "__seq__" in value:
        items = [_decode(v) for v in value["items"]]
        return tuple(items) if value["__seq__"] == "tuple" else items
    if "__dict__" in value:
        return {k: _decode(v) for k, v in value["__dict__"].items()}
    return value


def _static(value: Any) -> bool:
    import types

    from gymnasium import spaces
    from gymnasium.envs.registration import EnvSpec

    return isinstance(value, (spaces.Space, EnvSpec, enum.Enum, type, types.ModuleType)) or \
        callable(value)


def snapshot(envs: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The state of a synchronous vector env and its wrappers as JSON-able data, or None and the
    reason when something in it is not plain data."""
    from gymnasium.vector import SyncVectorEnv

    if not any(isinstance(o, SyncVectorEnv) for o in _chain(envs)):
        return None, "an async vector env keeps its environments in other processes"
    state = []
    for obj in _chain(envs):
        fields = {}
        for key, value in vars(obj).items():
            if key in _STATIC:
                continue
            ok, encoded = _encode(value)
            if ok:
                fields[key] = encoded
            elif not _static(value):
                return None, f"{type(obj).__name__}.{key} is a {type(value).__name__}"
        state.append({"type": type(obj).__name__, "fields": fields})
    return {"objects": state}, None


def restore(envs: Any, state: dict[str, Any]) -> None:
    objects = _chain(envs)
    saved = state["objects"]
    if [o["type"] for o in saved] != [type(o).__name__ for o in objects]:
        raise DataError("the saved environment state is of another set of wrappers; resume with "
                        "the run's own data section")
    for obj, entry in zip(objects, saved, strict=True):
        for key, value in entry["fields"].items():
            setattr(obj, key, _decode(value, getattr(obj, key, None)))


def write_snapshot(state: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(state), encoding="utf-8")


def read_snapshot(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
