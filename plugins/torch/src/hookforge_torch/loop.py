"""The ``supervised`` loop: minibatch training of any :class:`~hookforge_torch.model.TorchModel`.

This module only holds the configuration (so ``hookforge plugins`` stays fast); the work is in
:mod:`hookforge_torch.trainer`, imported when training starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from hookforge.components import ComponentConfig, Loop

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.types import FitResult


class OptimizerConfig(ComponentConfig):
    name: Literal["adamw", "adam", "sgd"] = Field("adamw", description="torch.optim optimizer")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (decoupled for adamw)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")


class SchedulerConfig(ComponentConfig):
    name: Literal["constant", "linear", "cosine", "cosine_with_restarts"] = Field(
        "constant", description="learning-rate schedule after warmup (torch.optim.lr_scheduler)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of all steps spent warming up")
    warmup_steps: int | None = Field(None, ge=0, description="warmup steps (overrides warmup_ratio)")
    num_cycles: int = Field(1, ge=1, description="cycles of cosine_with_restarts")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine schedules end at this "
                                                              "fraction of the peak rate")


class AmpConfig(ComponentConfig):
    enabled: bool = Field(False, description="mixed precision with torch.autocast")
    dtype: Literal["bfloat16", "float16"] = Field("bfloat16", description="autocast dtype; float16 "
                                                  "uses a GradScaler on CUDA")


class EarlyStoppingConfig(ComponentConfig):
    metric: str | None = Field(None, description="metric to watch, e.g. val/loss (None: off)")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: min for losses and errors")
    patience: int = Field(3, ge=1, description="validations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class SupervisedConfig(ComponentConfig):
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(32, ge=1, description="examples per micro-batch")
    eval_batch_size: int | None = Field(None, ge=1, description="batch size for validation and "
                                                                "prediction (default 4x batch_size)")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    amp: AmpConfig = Field(default_factory=AmpConfig)
    gradient_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    class_weights: Literal["none", "balanced"] | list[float] = Field(
        "none", description="classification loss weights: none, balanced, or one per class")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms(True)")
    shuffle: bool = Field(True, description="reshuffle the training split every epoch (seeded)")
    drop_last: bool = Field(False, description="drop the last incomplete batch of each epoch")
    val_every_n_steps: int | None = Field(None, ge=1, description="validate every N steps as well "
                                                                  "as at each epoch end")
    monitor: str = Field("val/loss", description="metric that decides the best checkpoint")
    monitor_mode: Literal["auto", "min", "max"] = Field("auto", description="auto: min for losses")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint_every_n_steps: int | None = Field(None, ge=1, description="also save 'last' every N "
                                                                         "steps (resume point)")
    keep_last_n: int = Field(0, ge=0, description="keep this many periodic step-N checkpoints")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
            raise ValueError("auto, cpu, cuda or cuda:N")
        return value


class SupervisedLoop(Loop):
    """Minibatch training: optimizers, warmup schedules, AMP, accumulation, clipping, early
    stopping, best/last checkpoints and exact resume."""

    Config = SupervisedConfig

    def preflight(self, run: Any) -> None:
        from hookforge_torch import engine

        engine.resolve_device(self.config.device)  # 'cuda' on a machine without one: say so now

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        from hookforge_torch.trainer import Trainer

        return Trainer(self.config, run, model, dataset).train()
