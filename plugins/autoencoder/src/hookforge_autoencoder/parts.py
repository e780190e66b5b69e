"""Encoders and decoders. Each part is a class with a ``Config`` (its options) and
``module(shape, latent_dim) -> torch.nn.Module``; the autoencoder builds them from the data's
shape. A third-party encoder is the same: a class registered under ``hookforge.encoders``.

Shapes: an encoder takes a batch of inputs of ``shape`` (``[features]`` flat, ``[C, H, W]`` an
image) and returns ``(N, latent_dim)``; a decoder takes ``(N, latent_dim)`` and returns the
batch in ``shape``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError

ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "silu": "SiLU", "leaky_relu": "LeakyReLU"}


class MLPConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [128, 64], description="hidden widths")
    activation: Literal["relu", "gelu", "tanh", "silu", "leaky_relu"] = "relu"
    norm: Literal["none", "batch", "layer"] = Field("none", description="normalisation per layer")
    dropout: float = Field(0.0, ge=0, lt=1)


def _mlp(sizes: list[int], cfg: MLPConfig, last_plain: bool) -> Any:
    import torch

    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if last_plain and i == len(sizes) - 2:
            break
        if cfg.norm == "batch":
            layers.append(torch.nn.BatchNorm1d(b))
        elif cfg.norm == "layer":
            layers.append(torch.nn.LayerNorm(b))
        layers.append(getattr(torch.nn, ACTIVATIONS[cfg.activation])())
        if cfg.dropout:
            layers.append(torch.nn.Dropout(cfg.dropout))
    return torch.nn.Sequential(*layers)


class MLPEncoder:
    """Flattens the input, then Linear -> norm -> activation -> dropout blocks to latent_dim."""

    Config = MLPConfig

    def __init__(self, config: MLPConfig) -> None:
        self.config = config

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        return torch.nn.Sequential(torch.nn.Flatten(),
                                   _mlp([math.prod(shape), *self.config.hidden, latent_dim],
                                        self.config, last_plain=True))


class MLPDecoder(MLPEncoder):
    """latent_dim -> the hidden widths reversed -> the input's shape."""

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        return torch.nn.Sequential(
            _mlp([latent_dim, *reversed(self.config.hidden), math.prod(shape)], self.config,
                 last_plain=True),
            torch.nn.Unflatten(1, tuple(shape)))


class ConvConfig(ComponentConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32], description="conv channels")
    kernel: int = Field(3, ge=1, description="kernel size (stride 2 per layer, padding keeps it)")
    activation: Literal["relu", "gelu", "tanh", "silu", "leaky_relu"] = "relu"


def _image(shape: list[int], part: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ConfigError(f"model.{part} conv needs image-shaped inputs [channels, height, width] "
                          f"(model.input_shape, e.g. [1, 8, 8] for the digits); the inputs have "
                          f"shape {shape}")
    return shape[0], shape[1], shape[2]


class ConvEncoder:
    """Strided convolutions (each halves the image), then a linear layer to latent_dim."""

    Config = ConvConfig

    def __init__(self, config: ConvConfig) -> None:
        self.config = config

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        c, h, w = _image(shape, "encoder")
        cfg, layers = self.config, []
        for a, b in itertools.pairwise([c, *cfg.channels]):
            layers += [torch.nn.Conv2d(a, b, cfg.kernel, stride=2, padding=cfg.kernel // 2),
                       getattr(torch.nn, ACTIVATIONS[cfg.activation])()]
        body = torch.nn.Sequential(*layers, torch.nn.Flatten())
        with torch.no_grad():
            flat = body(torch.zeros(1, c, h, w)).shape[1]
        return torch.nn.Sequential(body, torch.nn.Linear(flat, latent_dim))


class ConvDecoder(ConvEncoder):
    """A linear layer to a small feature map, transposed convolutions back up, cropped to the
    input's height and width."""

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        c, h, w = _image(shape, "decoder")
        cfg = self.config
        steps = len(cfg.channels)
        small_h, small_w = math.ceil(h / 2 ** steps), math.ceil(w / 2 ** steps)
        channels = list(reversed(cfg.channels))
        layers: list[Any] = []
        for a, b in itertools.pairwise(channels):
            layers += [torch.nn.ConvTranspose2d(a, b, 4, stride=2, padding=1),
                       getattr(torch.nn, ACTIVATIONS[cfg.activation])()]
        layers.append(torch.nn.ConvTranspose2d(channels[-1], c, 4, stride=2, padding=1))

        class Crop(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                return x[:, :, :h, :w]

        return torch.nn.Sequential(torch.nn.Linear(latent_dim, channels[0] * small_h * small_w),
                                   torch.nn.Unflatten(1, (channels[0], small_h, small_w)),
                                   *layers, Crop())
