"""Search spaces written in YAML: what each dotted config path may take, and when.

```yaml
space:
  loop.optimizer.lr: {type: loguniform, low: 1.0e-5, high: 1.0e-2}
  model.dropout:     {type: uniform, low: 0.0, high: 0.3}
  loop.batch_size:   {type: int, low: 16, high: 128, step: 16}
  model.hidden:      {type: categorical, choices: [[64], [128, 64]]}
  model.lora.r:      {type: categorical, choices: [8, 16], when: {model.lora.enabled: true}}
```
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig


class ParamSpec(ComponentConfig):
    type: Literal["loguniform", "uniform", "int", "categorical"] = Field(..., description="distribution")
    low: float | None = Field(None, description="lower bound (numeric types)")
    high: float | None = Field(None, description="upper bound (numeric types)")
    step: float | None = Field(None, gt=0, description="step (int, uniform)")
    log: bool = Field(False, description="sample on a log scale (int)")
    choices: list[Any] | None = Field(None, description="values (categorical)")
    when: dict[str, Any] | None = Field(None, description="only sampled when these paths have "
                                                          "these values (conditional parameter)")

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs at least one choice")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs low and high")
        if self.low > self.high:
            raise ValueError(f"bounds are inverted: low {self.low} > high {self.high}")
        if (self.type == "loguniform" or self.log) and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")
        return self


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def encode_choices(choices: list[Any]) -> list[Any]:
    """Optuna takes scalar choices only; lists and mappings travel as JSON text."""
    return list(choices) if all(_scalar(c) for c in choices) else [json.dumps(c) for c in choices]


def decode_choice(spec: ParamSpec, value: Any) -> Any:
    if spec.type == "categorical" and not all(_scalar(c) for c in spec.choices or []):
        return json.loads(value)
    return value


def applies(spec: ParamSpec, chosen: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether a conditional parameter is active, given what was sampled so far and the base
    config's flattened values."""
    for path, wanted in (spec.when or {}).items():
        value = chosen.get(path, base.get(path))
        if value != wanted:
            return False
    return True


def suggest(trial: Any, space: dict[str, ParamSpec], base: dict[str, Any]) -> dict[str, Any]:
    """Sample one set of overrides from ``space`` with an optuna trial."""
    chosen: dict[str, Any] = {}
    for path, spec in space.items():
        if not applies(spec, chosen, base):
            continue
        if spec.type == "categorical":
            value = decode_choice(spec, trial.suggest_categorical(path, encode_choices(spec.choices)))
        elif spec.type == "int":
            value = trial.suggest_int(path, int(spec.low), int(spec.high),
                                      step=int(spec.step or 1), log=spec.log)
        elif spec.type == "loguniform":
            value = trial.suggest_float(path, spec.low, spec.high, log=True)
        else:
            value = trial.suggest_float(path, spec.low, spec.high, step=spec.step)
        chosen[path] = value
    return chosen


def narrow(space: dict[str, ParamSpec], top: list[dict[str, Any]],
           margin: float = 0.1) -> dict[str, ParamSpec]:
    """The space around the best trials of a previous stage: numeric ranges shrunk to the span of
    the top trials' values (plus ``margin`` of the old range on each side, log-scale where the
    parameter is), categoricals restricted to the values that won."""
    narrowed: dict[str, ParamSpec] = {}
    for path, spec in space.items():
        values = [params[path] for params in top if path in params]
        if not values:
            narrowed[path] = spec
            continue
        if spec.type == "categorical":
            kept = [c for c in spec.choices or [] if c in values]
            narrowed[path] = spec.model_copy(update={"choices": kept or spec.choices})
            continue
        logscale = spec.type == "loguniform" or spec.log
        to = math.log if logscale else (lambda v: v)
        back = math.exp if logscale else (lambda v: v)
        old_low, old_high = to(spec.low), to(spec.high)
        pad = margin * (old_high - old_low)
        low = max(old_low, to(min(values)) - pad)
        high = min(old_high, to(max(values)) + pad)
        # back to the original scale, clipped: exp(log(x)) can land a hair outside the bounds
        new_low, new_high = max(spec.low, back(low)), min(spec.high, back(high))
        if spec.type == "int":
            new_low, new_high = math.floor(new_low), math.ceil(new_high)
        narrowed[path] = spec.model_copy(update={"low": new_low, "high": new_high})
    return narrowed
