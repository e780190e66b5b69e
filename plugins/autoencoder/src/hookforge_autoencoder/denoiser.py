"""The ``denoiser`` decoder: a denoising diffusion model of the input conditioned on the latent.

Noise schedules and samplers are diffusers': ``DDPMScheduler`` adds noise for training (the
``diffusion_ae`` loop's denoising loss), ``DDIMScheduler`` (built from the same config)
decodes a latent in ``num_inference_steps`` steps. The network is an MLP over the noisy input,
a sinusoidal embedding of the timestep (diffusers' ``get_timestep_embedding``) and the latent;
a package registers a U-Net decoder the same way (a class with ``denoising = True`` whose
module has ``denoising_loss(x0, z)`` and decodes in ``forward(z)``).

Decoding starts from noise drawn with a fixed-seed generator of its own: predictions are
repeatable and the training RNG stream (part of every checkpoint) is not touched.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig


class DenoiserConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 256], description="network widths")
    time_embedding: int = Field(64, ge=2, description="size of the timestep embedding")
    num_train_timesteps: int = Field(1000, ge=2, description="noise levels of the DDPM schedule")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = Field(
        "squaredcos_cap_v2", description="diffusers beta schedule")
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = Field(
        "sample", description="what the network predicts: sample (x0, the steadiest on small "
        "data and few decoding steps), epsilon or v_prediction")
    num_inference_steps: int = Field(50, ge=1, description="DDIM steps to decode a latent")
    sample_seed: int = Field(0, ge=0, description="seed of the starting noise when decoding")


class Denoiser:
    """A conditional denoising network; trained by loop ``diffusion_ae``, decoded with DDIM."""

    Config = DenoiserConfig
    denoising = True  # the loops check this: only diffusion_ae trains such a decoder

    def __init__(self, config: DenoiserConfig) -> None:
        self.config = config

    def module(self, shape: list[int], latent_dim: int) -> Any:
        import torch
        from diffusers import DDIMScheduler, DDPMScheduler
        from diffusers.models.embeddings import get_timestep_embedding

        cfg = self.config
        size = math.prod(shape)
        noise_schedule = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps,
                                       beta_schedule=cfg.beta_schedule,
                                       prediction_type=cfg.prediction_type, clip_sample=False)

        class DenoisingDecoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                widths = [size + cfg.time_embedding + latent_dim, *cfg.hidden]
                layers: list[torch.nn.Module] = []
                for a, b in itertools.pairwise(widths):
                    layers += [torch.nn.Linear(a, b), torch.nn.SiLU()]
                layers.append(torch.nn.Linear(widths[-1], size))
                self.net = torch.nn.Sequential(*layers)
                self.inference_steps = cfg.num_inference_steps  # a loop may lower it to validate

            def predict(self, noisy: Any, timesteps: Any, z: Any) -> Any:
                t = get_timestep_embedding(timesteps, cfg.time_embedding).to(noisy.dtype)
                return self.net(torch.cat([noisy.flatten(1), t, z.to(noisy.dtype)], dim=1))

            def denoising_loss(self, x0: Any, z: Any) -> Any:
                """The DDPM objective at a random noise level per row (the global RNG: it is
                checkpointed, so a resumed run draws the same levels)."""
                x0 = x0.flatten(1)
                noise = torch.randn_like(x0)
                t = torch.randint(0, cfg.num_train_timesteps, (len(x0),), device=x0.device)
                noisy = noise_schedule.add_noise(x0, noise, t)
                if cfg.prediction_type == "epsilon":
                    target = noise
                elif cfg.prediction_type == "v_prediction":
                    target = noise_schedule.get_velocity(x0, noise, t)
                else:
                    target = x0
                return (self.predict(noisy, t, z).float() - target.float()).pow(2).mean()

            def forward(self, z: Any) -> Any:
                """Decode: DDIM from fixed-seed noise, conditioned on ``z``."""
                sampler = DDIMScheduler.from_config(noise_schedule.config)
                sampler.set_timesteps(self.inference_steps, device=z.device)
                generator = torch.Generator(device=z.device).manual_seed(cfg.sample_seed)
                x = torch.randn((len(z), size), generator=generator, device=z.device, dtype=z.dtype)
                for t in sampler.timesteps:
                    timesteps = torch.full((len(z),), int(t), device=z.device, dtype=torch.long)
                    x = sampler.step(self.predict(x, timesteps, z), t, x).prev_sample
                return x.reshape(len(z), *shape)

        return DenoisingDecoder()
