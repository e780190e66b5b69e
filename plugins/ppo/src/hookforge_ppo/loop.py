"""The ``ppo`` loop: its configuration and checks (the algorithm is in trainer.py and ppo.py).

Names and defaults follow stable-baselines3's PPO, so rl-zoo3's tuned hyperparameters carry over
as they are (``n_steps`` per environment, ``batch_size`` per minibatch, schedules as ``lin_X``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from hookforge.components import ComponentConfig, Loop
from hookforge.errors import ConfigError
from hookforge.types import FitResult


class PPOConfig(ComponentConfig):
    total_timesteps: int = Field(100_000, ge=1, description="environment steps in all (all envs)")
    n_steps: int = Field(128, ge=1, description="steps per environment in each rollout")
    batch_size: int = Field(64, ge=1, description="samples per minibatch")
    n_epochs: int = Field(10, ge=1, description="passes over each rollout")
    learning_rate: float | str = Field(3e-4, description="a number or lin_X (linear to 0)")
    clip_range: float | str = Field(0.2, description="PPO's clip: a number or lin_X")
    clip_range_vf: float | str | None = Field(None, description="clip the value change (None: off)")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE's lambda")
    ent_coef: float = Field(0.0, ge=0, description="entropy bonus")
    vf_coef: float = Field(0.5, ge=0, description="value loss weight")
    max_grad_norm: float | None = Field(0.5, gt=0, description="clip the gradient norm")
    target_kl: float | None = Field(None, gt=0, description="stop an update's epochs once the "
                                                            "approx. KL passes 1.5 x this")
    normalize_advantage: bool = Field(True, description="normalise advantages per minibatch")
    adam_eps: float = Field(1e-5, gt=0, description="Adam's epsilon (1e-5, as SB3 and CleanRL)")
    eval_every: int = Field(10, ge=0, description="evaluate on the val episodes every N "
                                                  "iterations (0: only at the end)")
    checkpoint_every: int = Field(10, ge=1, description="save 'last' (the resume point) every N "
                                                        "iterations, and at the end")
    monitor: str = Field("val/mean_return", description="metric that decides the best checkpoint")
    monitor_mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for returns")
    device: str = Field("cpu", description="cpu, cuda or auto (small policies are faster on cpu)")

    @field_validator("learning_rate", "clip_range", "clip_range_vf")
    @classmethod
    def _schedule(cls, value: Any, info: Any) -> Any:
        from hookforge_ppo.ppo import schedule

        if value is None:
            return value
        try:
            function = schedule(value, info.field_name)
        except ConfigError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
        start = function(1.0)
        if not (start > 0 or (start == 0 and info.field_name != "learning_rate")):
            raise ValueError("greater than 0")
        return value


def check_rollout(cfg: PPOConfig, num_envs: int) -> int:
    """The rollout's size, which minibatches of ``batch_size`` must divide."""
    rollout = cfg.n_steps * num_envs
    if rollout % cfg.batch_size or cfg.batch_size > rollout:
        raise ConfigError(f"loop.batch_size {cfg.batch_size} does not divide a rollout of "
                          f"loop.n_steps x data.num_envs = {cfg.n_steps} x {num_envs} = "
                          f"{rollout} samples")
    return rollout


class PPOLoop(Loop):
    """Proximal Policy Optimization: rollouts, GAE, the clipped objective, minibatch epochs, KL
    early stop, schedules; one iteration per ``run.end_epoch``; exact resume."""

    Config = PPOConfig

    def preflight(self, run: Any) -> None:
        data = run.config.data
        num_envs = getattr(data.options, "num_envs", None) if data is not None else None
        if num_envs is None:
            return
        rollout = check_rollout(self.config, num_envs)
        if self.config.total_timesteps < rollout:
            raise ConfigError(f"loop.total_timesteps {self.config.total_timesteps} is less than one "
                              f"rollout ({rollout} steps)")
        from hookforge_torch import engine

        engine.resolve_device(self.config.device)

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        from hookforge_ppo.trainer import PPOTrainer

        return PPOTrainer(self.config, run, model, dataset).train()
