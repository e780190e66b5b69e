"""The three autoencoder loops, all on hookforge-torch's training engine (optimizer, schedulers,
AMP, gradient accumulation, early stopping, best/last checkpoints, exact resume, pruning through
the run), so every loop reports metrics and checkpoints down one code path:

- ``ae``: the reconstruction loss (plus the latent space's own term) and nothing else;
- ``gan_ae``: an adversarial autoencoder: a discriminator on reconstructions or on latents,
  its own optimizer, a warm-up in which it learns alone (:mod:`hookforge_autoencoder.adversarial`);
- ``diffusion_ae``: the decoder is a denoising diffusion model conditioned on the latent,
  trained on the denoising loss with diffusers' DDPM schedule and decoded with DDIM
  (:mod:`hookforge_autoencoder.diffusion`).

Only configuration lives here (``hookforge plugins`` stays fast); the trainers import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError
from hookforge_torch.loop import SupervisedConfig, SupervisedLoop

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.types import FitResult


class AELoop(SupervisedLoop):
    """Trains an autoencoder with the torch engine; the best checkpoint by val/loss."""

    def preflight(self, run: Any) -> None:
        super().preflight(run)
        _check_decoder(run, self.plugin_name, wants_denoiser=False)


class AdversarialConfig(ComponentConfig):
    on: Literal["reconstruction", "latent"] = Field(
        "reconstruction", description="what the discriminator judges: reconstructions against "
        "inputs, or latents against samples of N(0, I) (an adversarial autoencoder)")
    weight: float = Field(0.05, ge=0, description="weight of the adversarial term in the "
                                                  "autoencoder's loss")
    warmup_steps: int = Field(50, ge=0, description="optimizer steps in which the discriminator "
                                                    "learns alone, before its term enters the loss")
    hidden: list[int] = Field(default_factory=lambda: [128, 64], description="discriminator widths")
    lr: float = Field(2e-4, gt=0, description="the discriminator's Adam learning rate")
    betas: tuple[float, float] = Field((0.5, 0.999), description="the discriminator's Adam betas")


class GanAEConfig(SupervisedConfig):
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)


class GanAELoop(AELoop):
    """An adversarial autoencoder: the engine's loop plus a discriminator and its optimizer,
    both saved in every checkpoint's training state."""

    Config = GanAEConfig

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        from hookforge_autoencoder.adversarial import AdversarialTrainer

        return AdversarialTrainer(self.config, run, model, dataset).train()


class DiffusionAEConfig(SupervisedConfig):
    num_inference_steps: int | None = Field(
        None, ge=1, description="DDIM steps when validating during training (default: the "
        "decoder's num_inference_steps; fewer is faster)")


class DiffusionAELoop(SupervisedLoop):
    """Trains an autoencoder whose decoder is ``denoiser``: the denoising loss at a random
    noise level per row; validation decodes with DDIM."""

    Config = DiffusionAEConfig

    def preflight(self, run: Any) -> None:
        super().preflight(run)
        _check_decoder(run, self.plugin_name, wants_denoiser=True)

    def fit(self, run: Any, model: Any, dataset: Any) -> FitResult:
        from hookforge_autoencoder.diffusion import DiffusionTrainer

        return DiffusionTrainer(self.config, run, model, dataset).train()


def _check_decoder(run: Any, loop: str, wants_denoiser: bool) -> None:
    """A denoising decoder needs the diffusion loop and nothing else can train it."""
    model = getattr(run.config, "model", None)
    decoder = getattr(getattr(model, "options", None), "decoder", None)
    if decoder is None or not hasattr(decoder, "name"):
        return
    is_denoiser = bool(getattr(decoder.cls, "denoising", False))
    if wants_denoiser and not is_denoiser:
        raise ConfigError(f"loop '{loop}' trains a denoising decoder; model.decoder is "
                          f"'{decoder.name}' (set model.decoder=denoiser)")
    if not wants_denoiser and is_denoiser:
        raise ConfigError(f"model.decoder '{decoder.name}' is a diffusion model: train it with "
                          f"loop.name=diffusion_ae (loop '{loop}' has no denoising objective)")
