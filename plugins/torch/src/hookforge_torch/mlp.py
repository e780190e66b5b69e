"""The ``mlp`` model: a multi-layer perceptron for classification or regression on feature arrays."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import DataError
from hookforge_torch.model import TorchModel


class MLP(TorchModel):
    """Multi-layer perceptron: Linear -> activation -> dropout blocks, then a linear head."""

    class Config(ComponentConfig):
        hidden: list[Annotated[int, Field(ge=1)]] = Field(
            default_factory=lambda: [128, 64], description="width of each hidden layer (1 or more)")
        activation: Literal["relu", "gelu", "tanh", "silu"] = Field("relu", description="activation")
        dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each hidden layer")
        num_classes: int | None = Field(None, ge=2, description="output classes (default: from the data)")
        standardize: bool = Field(True, description="scale inputs (and regression targets) by "
                                                    "training mean and std, stored with the weights")

    def validate_data(self, dataset: Any) -> None:
        info = dataset.info
        if info.n_features is None:
            raise DataError("model 'mlp' needs numeric feature arrays (n_features unknown)")
        if info.task == "classification" and self.config.num_classes is not None \
                and len(info.classes or []) > self.config.num_classes:
            raise DataError(f"labels out of range for the model: the data has {len(info.classes)} "
                            f"classes, model.num_classes is {self.config.num_classes}")

    def create_module(self, info: Any) -> Any:
        from hookforge_torch.nets import MLPNet

        if info.task in ("classification", "multilabel"):
            outputs = self.config.num_classes or len(info.classes)
        else:
            outputs = 1
        return MLPNet(info.n_features, self.config.hidden, outputs, self.config.activation,
                      self.config.dropout)

    def build(self, run: Any, dataset: Any) -> None:
        super().build(run, dataset)
        if self.config.standardize:
            import numpy as np
            import torch

            train = dataset.split("train")
            x = np.asarray(train.X, dtype=np.float64)
            std = x.std(axis=0)
            self.net.x_mean.copy_(torch.from_numpy(x.mean(axis=0)))
            self.net.x_std.copy_(torch.from_numpy(np.where(std > 0, std, 1.0)))
            if dataset.task == "regression":
                y = np.asarray(train.y, dtype=np.float64)
                self.net.y_mean.fill_(float(y.mean()))
                self.net.y_std.fill_(float(y.std() or 1.0))

    def compute_loss(self, batch: dict[str, Any], outputs: Any) -> Any:
        if self.info.task == "regression":  # learn standardized targets: better conditioned
            import torch.nn.functional as F

            target = (batch["y"] - self.net.y_mean) / self.net.y_std
            return F.mse_loss(outputs.float().squeeze(-1), target.float())
        return super().compute_loss(batch, outputs)

    def to_predictions(self, outputs: Any) -> Any:
        if self.info.task == "regression":
            outputs = outputs.float() * self.net.y_std.cpu() + self.net.y_mean.cpu()
        return super().to_predictions(outputs)
