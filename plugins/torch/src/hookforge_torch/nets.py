"""torch.nn modules of the models in this package (imported only when a model is built)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLPNet(nn.Module):
    """Standardize inputs with stored statistics, then Linear -> activation -> dropout blocks and a
    linear head. The statistics are buffers, so they are saved with the weights."""

    def __init__(self, n_features: int, hidden: list[int], outputs: int, activation: str,
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std)
