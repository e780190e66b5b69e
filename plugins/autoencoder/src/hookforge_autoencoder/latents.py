"""Latent spaces between the encoder and the decoder. Each is a class with a ``Config``,
``output_dim(latent_dim)`` and ``module(latent_dim) -> torch.nn.Module`` whose forward takes the
encoder's ``(N, latent_dim)`` and returns ``(z, aux_loss, codes)``: what the decoder gets, a loss
term added to the reconstruction loss (None where there is none: no extra op per step), and code
indices (VQ) or None.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError


class Identity:
    """No bottleneck beyond the encoder's own output."""

    class Config(ComponentConfig):
        pass

    def __init__(self, config: Any) -> None:
        self.config = config

    def output_dim(self, latent_dim: int) -> int:
        return latent_dim

    def module(self, latent_dim: int) -> Any:
        import torch

        class Passthrough(torch.nn.Module):
            def forward(self, z: Any) -> tuple[Any, Any, None]:
                return z, None, None

        return Passthrough()


class Linear(Identity):
    """A learned linear projection of the latent (to ``dim``, default the latent's size)."""

    class Config(ComponentConfig):
        dim: int | None = Field(None, ge=1, description="output size (default: latent_dim)")

    def output_dim(self, latent_dim: int) -> int:
        return self.config.dim or latent_dim

    def module(self, latent_dim: int) -> Any:
        import torch

        projection = torch.nn.Linear(latent_dim, self.output_dim(latent_dim))

        class Projection(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.projection = projection

            def forward(self, z: Any) -> tuple[Any, Any, None]:
                return self.projection(z), None, None

        return Projection()


class VQ(Identity):
    """Vector quantisation with the vector-quantize-pytorch library: an EMA codebook, k-means
    initialisation, dead-code expiry and the commitment loss are the library's."""

    class Config(ComponentConfig):
        codebook_size: int = Field(64, ge=2, description="codes in the codebook")
        dim: int | None = Field(None, ge=1, description="code size: must equal model.latent_dim "
                                                        "(default: it)")
        decay: float = Field(0.8, gt=0, lt=1, description="EMA decay of the codebook")
        commitment_weight: float = Field(1.0, ge=0, description="weight of the commitment loss")
        kmeans_init: bool = Field(True, description="initialise the codebook with k-means")
        threshold_ema_dead_code: int = Field(2, ge=0, description="replace codes used fewer "
                                                                  "times than this (0: never)")

    def module(self, latent_dim: int) -> Any:
        import logging

        import torch
        from vector_quantize_pytorch import VectorQuantize

        c = self.config
        if c.dim is not None and c.dim != latent_dim:
            raise ConfigError(f"model.latent.dim={c.dim} (the vq codebook's dim) does not match "
                              f"model.latent_dim={latent_dim}, the size the encoder produces")
        logging.getLogger("vector_quantize_pytorch").setLevel(logging.ERROR)
        quantizer = VectorQuantize(dim=latent_dim, codebook_size=c.codebook_size, decay=c.decay,
                                   commitment_weight=c.commitment_weight, kmeans_init=c.kmeans_init,
                                   threshold_ema_dead_code=c.threshold_ema_dead_code)

        class Quantizer(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.quantizer = quantizer

            def forward(self, z: Any) -> tuple[Any, Any, Any]:
                quantized, codes, loss = self.quantizer(z)
                return quantized, loss.sum(), codes

        return Quantizer()


class VAE(Identity):
    """A variational latent: mean and log-variance, the reparameterisation trick while
    training (the mean at evaluation), and the KL term weighted up linearly over
    ``warmup_steps`` to ``kl_weight`` (the step count is a buffer, so a resumed run continues
    the warm-up where it was)."""

    class Config(ComponentConfig):
        kl_weight: float = Field(1e-3, ge=0, description="weight of KL(q(z|x) || N(0, I))")
        warmup_steps: int = Field(500, ge=0, description="steps over which the weight rises from 0")

    def module(self, latent_dim: int) -> Any:
        import torch

        c = self.config

        class Variational(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stats = torch.nn.Linear(latent_dim, 2 * latent_dim)
                self.register_buffer("step", torch.zeros((), dtype=torch.long))

            def forward(self, z: Any) -> tuple[Any, Any, None]:
                mean, log_var = self.stats(z).chunk(2, dim=-1)
                log_var = log_var.clamp(-10, 10)
                if not self.training:
                    return mean, None, None
                self.step += 1
                sample = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
                kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1).mean()
                ramp = min(1.0, float(self.step) / c.warmup_steps) if c.warmup_steps else 1.0
                return sample, c.kl_weight * ramp * kl, None

        return Variational()
