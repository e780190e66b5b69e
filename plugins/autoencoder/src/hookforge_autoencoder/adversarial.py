"""The trainer of the ``gan_ae`` loop: hookforge-torch's engine with a discriminator.

Per micro-batch: the autoencoder's forward pass; one discriminator step on real against fake
(reconstructions against inputs, or encoder latents against samples of N(0, I)), fakes
detached; then the autoencoder's loss, reconstruction plus ``weight`` times the non-saturating
adversarial term once the discriminator's ``warmup_steps`` are over. The engine steps the
autoencoder's optimizer as for any model; the discriminator, its optimizer and the epoch's
sums of its losses travel in the training state of every checkpoint, so a resumed run goes
on exactly.

The discriminator runs in float32 outside autocast: it is small, and its logits feed a
log-sigmoid loss that half precision makes noisy.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from hookforge_torch.trainer import Trainer


def discriminator(in_features: int, hidden: list[int]) -> torch.nn.Module:
    """An MLP from a flattened input to one logit (LeakyReLU, as GAN discriminators use)."""
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for a, b in zip([in_features, *hidden], hidden, strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.LeakyReLU(0.2)]
    layers.append(torch.nn.Linear(hidden[-1] if hidden else in_features, 1))
    return torch.nn.Sequential(*layers)


class AdversarialTrainer(Trainer):
    def setup(self) -> None:
        adv = self.cfg.adversarial
        shape = self.model.input_shape(self.dataset.info)
        size = self.model.config.latent_dim if adv.on == "latent" else math.prod(shape)
        self.discriminator = discriminator(size, adv.hidden).to(self.device)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=adv.lr,
                                            betas=adv.betas)
        self.d_losses: list[torch.Tensor] = []
        self.adv_losses: list[torch.Tensor] = []

    def step_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        adv, model = self.cfg.adversarial, self.model
        with self._amp_context:
            outputs = model.forward(batch)
            reconstruction_loss = model.compute_loss(batch, outputs)
        reconstruction, target, _, _, latent = outputs
        if adv.on == "latent":
            real, fake = torch.randn_like(latent.float()), latent.float()
        else:
            real, fake = target.float(), reconstruction.float()

        # the discriminator's step: real -> 1, fake -> 0 (fakes detached: it trains alone)
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        self.d_losses.append(d_loss.detach())
        if self.step < adv.warmup_steps or adv.weight == 0:
            return reconstruction_loss

        # the autoencoder's adversarial term: make the discriminator call its fakes real. The
        # gradients this leaves on the discriminator are cleared before its next step.
        judged = self.discriminator(fake)
        adversarial = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
        self.adv_losses.append(adversarial.detach())
        return reconstruction_loss + adv.weight * adversarial

    def epoch_metrics(self) -> dict[str, float]:
        metrics = {}
        if self.d_losses:
            metrics["d_loss"] = float(torch.stack(self.d_losses).mean())
        if self.adv_losses:
            metrics["adv_loss"] = float(torch.stack(self.adv_losses).mean())
        self.d_losses.clear()
        self.adv_losses.clear()
        return metrics

    def extra_state(self) -> dict[str, Any]:
        def stacked(values: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(values).cpu() if values else torch.zeros(0)

        return {"discriminator": {k: v.cpu() for k, v in self.discriminator.state_dict().items()},
                "d_optimizer": self.d_optimizer.state_dict(),
                "d_losses": stacked(self.d_losses), "adv_losses": stacked(self.adv_losses)}

    def restore_extra_state(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_losses = list(state["d_losses"].to(self.device).unbind(0))
        self.adv_losses = list(state["adv_losses"].to(self.device).unbind(0))
