"""Rewards for language-model RL: the sub-component kind ``reward`` (``hookforge.rewards``).

A reward scores completions of prompts: ``reward(inputs, completions)`` takes the rows the
completions answer (a DataFrame with ``prompt`` and, for generated tasks, ``family`` and
``data``) and returns one float per completion, NaN where it could not score one (an RL loop drops
and counts those). Built in:

- ``verifier``: the task family's own verifier (hookforge_lm.tasks), a programmatic reward;
- ``model``: a trained ``reward_model`` run (Bradley-Terry), its score of each completion;
- ``combined``: a weighted sum of other rewards (``parts: [{name: verifier, weight: 1}, ...]``).

A package adds one by registering a class with a ``Config`` and ``__call__`` under
``hookforge.rewards``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError


class VerifierRewardConfig(ComponentConfig):
    families: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options per family for its verifier (default: the "
                                          "family's defaults, e.g. {sat: {partial_credit: true}})")


class VerifierReward:
    """The verifier of each row's task family (scores in [0, 1]; NaN for a crash or no family)."""

    Config = VerifierRewardConfig

    def __init__(self, config: VerifierRewardConfig | None = None) -> None:
        self.config = config or VerifierRewardConfig()
        self._verifiers: dict[str, Any] = {}

    def _verifier(self, family: str) -> Any:
        if family not in self._verifiers:
            from hookforge import registry

            cls = registry.load("task", family)
            self._verifiers[family] = cls(cls.Config.model_validate(self.config.families.get(family, {})))
        return self._verifiers[family]

    def __call__(self, inputs: Any, completions: list[str]) -> Any:
        import numpy as np

        from hookforge.errors import PluginError

        out = np.full(len(completions), np.nan)
        families = inputs["family"] if "family" in inputs.columns else [None] * len(completions)
        data = inputs["data"] if "data" in inputs.columns else [None] * len(completions)
        for i, (family, item, answer) in enumerate(zip(families, data, completions, strict=True)):
            if not isinstance(family, str) or not family:
                continue
            try:
                score = float(self._verifier(family).verify(
                    json.loads(item) if isinstance(item, str) else item, answer))
            except PluginError:
                raise
            except Exception:  # a verifier bug: this completion has no reward, the rest do
                continue
            out[i] = score if 0.0 <= score <= 1.0 else np.nan
        return out


class ModelRewardConfig(ComponentConfig):
    run: str = Field(..., description="a finished reward_model run directory",
                     json_schema_extra={"path": True})


class ModelReward:
    """A trained ``reward_model``'s score of each completion."""

    Config = ModelRewardConfig

    def __init__(self, config: ModelRewardConfig) -> None:
        self.config = config
        self._model: Any = None

    def model(self) -> Any:
        if self._model is None:
            from hookforge.run import Run

            model = Run.open(self.config.run).load_model()
            if getattr(model, "plugin_name", "") != "reward_model":
                raise ConfigError(f"reward.run: {self.config.run} is a '{model.plugin_name}' run, "
                                  f"not a reward_model")
            self._model = model
        return self._model

    def __call__(self, inputs: Any, completions: list[str]) -> Any:
        return self.model().score([str(p) for p in inputs["prompt"]], list(completions))


class CombinedRewardConfig(ComponentConfig):
    parts: list[dict[str, Any]] = Field(..., min_length=1, description=(
        "rewards to add up, each {name: NAME, weight: W, options...}"))


class CombinedReward:
    """A weighted sum of rewards; NaN where any part is NaN."""

    Config = CombinedRewardConfig

    def __init__(self, config: CombinedRewardConfig) -> None:
        from hookforge import registry
        from hookforge.errors import PluginError

        self.parts: list[tuple[float, Any]] = []
        for number, part in enumerate(config.parts):
            options = dict(part)
            name = options.pop("name", None)
            weight = float(options.pop("weight", 1.0))
            try:
                cls = registry.load("reward", str(name))
            except PluginError as exc:
                raise ConfigError(f"reward.parts[{number}]: {exc}") from None
            if cls is CombinedReward:
                raise ConfigError(f"reward.parts[{number}]: a combined reward cannot hold another")
            self.parts.append((weight, cls(cls.Config.model_validate(options))))

    def __call__(self, inputs: Any, completions: list[str]) -> Any:
        import numpy as np

        total = np.zeros(len(completions))
        for weight, part in self.parts:
            total = total + weight * np.asarray(part(inputs, completions), dtype=float)
        return total
