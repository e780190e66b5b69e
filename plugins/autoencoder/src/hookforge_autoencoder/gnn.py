"""``gnn`` encoder and decoder for sets of points (particles in a jet, hits in a detector).

The encoder builds a k-nearest-neighbour graph per set (padding excluded through the mask),
applies torch-geometric's ``EdgeConv`` layers (an MLP on ``[x_i, x_j - x_i]`` with max
aggregation, as in DGCNN/ParticleNet) and pools over the real points (mean and max), so the
latent does not depend on the order of the points. The decoder maps the latent to a fixed-size
set, refined by EdgeConv layers on its own k-NN graph; the autoencoder scores it with the
Chamfer distance (:func:`chamfer`), which is order-free too.

The graph is built densely per batch (``torch.cdist`` + ``topk``): sets here are small and of a
fixed padded size, where that is faster than torch-cluster's sparse search and needs no
compiled extension.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError


class GNNConfig(ComponentConfig):
    k: int = Field(8, ge=1, description="neighbours per point in the k-NN graph")
    hidden: list[int] = Field(default_factory=lambda: [64, 64],
                              description="EdgeConv widths (one layer each)")
    coordinates: list[int] | None = Field(None, description=(
        "feature indices the k-NN graph is built on (e.g. [1, 2] for eta and phi; "
        "default: all features)"))
    pool: Literal["mean", "max", "meanmax"] = Field("meanmax", description="pooling over points")


def _set_shape(shape: list[int], part: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ConfigError(f"model.{part} gnn needs sets of points [points, features] (e.g. an h5 "
                          f"source with features of shape [rows, particles, features]); the "
                          f"inputs have shape {shape}")
    return shape[0], shape[1]


def knn_edges(points: Any, k: int, mask: Any = None) -> Any:
    """edge_index (source, target) of each point's k nearest neighbours, over the batch's sets
    laid end to end (node ``b * P + i``); padded points have no edges."""
    import torch

    batch, size, _ = points.shape
    distance = torch.cdist(points.float(), points.float())
    eye = torch.eye(size, dtype=torch.bool, device=points.device)
    distance = distance.masked_fill(eye, float("inf"))
    if mask is not None:
        distance = distance.masked_fill(~mask[:, None, :], float("inf"))
    k = min(k, size - 1)
    nearest, neighbours = distance.topk(k, dim=2, largest=False)
    offsets = (torch.arange(batch, device=points.device) * size).view(batch, 1, 1)
    source = (neighbours + offsets).reshape(-1)
    target = (torch.arange(size, device=points.device).view(1, size, 1) + offsets).expand(
        batch, size, k).reshape(-1)
    keep = torch.isfinite(nearest).reshape(-1)
    if mask is not None:
        keep &= mask.reshape(-1)[target]
    return torch.stack([source[keep], target[keep]])


def _edge_convs(widths: list[int]) -> Any:
    import torch
    from torch_geometric.nn import EdgeConv

    return torch.nn.ModuleList(
        EdgeConv(torch.nn.Sequential(torch.nn.Linear(2 * a, b), torch.nn.ReLU(),
                                     torch.nn.Linear(b, b)), aggr="max")
        for a, b in itertools.pairwise(widths))


class GNNEncoder:
    """k-NN graph + EdgeConv layers + masked pooling -> latent_dim."""

    Config = GNNConfig
    uses_mask = True  # the autoencoder passes the set's mask to the module

    def __init__(self, config: GNNConfig) -> None:
        self.config = config

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        size, features = _set_shape(shape, "encoder")
        cfg = self.config
        coordinates = cfg.coordinates or list(range(features))
        if max(coordinates) >= features or min(coordinates) < 0:
            raise ConfigError(f"model.encoder.coordinates {coordinates}: the points have "
                              f"{features} features")
        pooled = cfg.hidden[-1] * (2 if cfg.pool == "meanmax" else 1) if cfg.hidden else features

        class EdgeConvEncoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.convs = _edge_convs([features, *cfg.hidden])
                self.head = torch.nn.Linear(pooled, latent_dim)

            def forward(self, x: Any, mask: Any = None) -> Any:
                batch = x.shape[0]
                real = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool,
                                                               device=x.device)
                edges = knn_edges(x[..., coordinates], cfg.k, real)
                h = x.reshape(batch * size, features)
                for conv in self.convs:
                    h = torch.relu(conv(h, edges))
                h = h.view(batch, size, -1)
                weight = real.unsqueeze(-1).to(h.dtype)
                parts = []
                if cfg.pool in ("mean", "meanmax"):
                    parts.append((h * weight).sum(1) / weight.sum(1).clamp(min=1))
                if cfg.pool in ("max", "meanmax"):
                    parts.append(h.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1)
                                 .clamp(min=-1e4))
                return self.head(torch.cat(parts, dim=1))

        return EdgeConvEncoder()


class GNNDecoderConfig(GNNConfig):
    expand: list[int] = Field(default_factory=lambda: [128, 256],
                              description="MLP widths from the latent to the initial set")


class GNNDecoder:
    """latent -> MLP -> a set of [points, features], refined by EdgeConv (residual) layers;
    scored with the Chamfer distance."""

    Config = GNNDecoderConfig
    set_output = True  # the autoencoder scores this part's output with a set loss

    def __init__(self, config: GNNDecoderConfig) -> None:
        self.config = config

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch

        size, features = _set_shape(shape, "decoder")
        cfg = self.config
        coordinates = cfg.coordinates or list(range(features))

        class SetDecoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                layers: list[torch.nn.Module] = []
                for a, b in zip([latent_dim, *cfg.expand], cfg.expand, strict=False):
                    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
                layers.append(torch.nn.Linear(cfg.expand[-1] if cfg.expand else latent_dim,
                                              size * features))
                self.expand = torch.nn.Sequential(*layers)
                self.convs = _edge_convs([features, *cfg.hidden])
                self.out = torch.nn.Linear(cfg.hidden[-1] if cfg.hidden else features, features)

            def forward(self, z: Any) -> Any:
                points = self.expand(z).view(len(z), size, features)
                edges = knn_edges(points[..., coordinates].detach(), cfg.k)
                h = points.reshape(len(z) * size, features)
                for conv in self.convs:
                    h = torch.relu(conv(h, edges))
                return points + self.out(h).view(len(z), size, features)

        return SetDecoder()


def chamfer(prediction: Any, target: Any, mask: Any = None) -> tuple[Any, Any]:
    """Per-row Chamfer distance between sets [B, P, F] (squared Euclidean: each predicted point
    to its nearest real target point, plus each real target point to its nearest prediction),
    and each real target point's squared error per feature against its nearest prediction
    [B, P, F] (per-feature errors for the evaluator). Hand-written: a few lines of cdist/min,
    where the libraries that ship one (pytorch3d, kaolin) are large compiled dependencies."""
    import torch

    distance = torch.cdist(prediction.float(), target.float()).pow(2)  # [B, P_pred, P_target]
    real = mask if mask is not None else torch.ones(target.shape[:2], dtype=torch.bool,
                                                   device=target.device)
    to_target = distance.masked_fill(~real[:, None, :], float("inf")).min(2).values.mean(1)
    to_target = torch.where(real.any(1), to_target, torch.zeros_like(to_target))  # an empty set
    nearest = distance.min(1)  # for every target point, its nearest prediction
    weight = real.to(distance.dtype)
    to_prediction = (nearest.values * weight).sum(1) / weight.sum(1).clamp(min=1)
    matched = torch.gather(prediction.float(), 1,
                           nearest.indices.unsqueeze(-1).expand(-1, -1, prediction.shape[-1]))
    feature_errors = (matched - target.float()).pow(2) * weight.unsqueeze(-1)
    return to_target + to_prediction, feature_errors
