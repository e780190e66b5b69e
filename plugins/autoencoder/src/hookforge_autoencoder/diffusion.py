"""The trainer of the ``diffusion_ae`` loop: hookforge-torch's engine whose per-batch loss is
the denoising loss of the ``denoiser`` decoder, conditioned on the encoder's (quantised) latent,
plus the latent space's own term. Validation decodes with DDIM (``loop.num_inference_steps``
while training, if set), so ``val/loss`` and ``val/mse`` measure reconstructions, as for ``ae``.
"""

from __future__ import annotations

from typing import Any

import torch

from hookforge.types import FitResult
from hookforge_torch.trainer import Trainer


class DiffusionTrainer(Trainer):
    def setup(self) -> None:
        self.decoder = self.model.net.decoder
        self.decode_steps = self.decoder.inference_steps
        if self.cfg.num_inference_steps is not None:
            self.decoder.inference_steps = self.cfg.num_inference_steps

    def step_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        with self._amp_context:
            target, quantized, aux, _, _ = self.model.module(batch["x"], batch.get("mask"),
                                                                decode=False)
            loss = self.decoder.denoising_loss(target, quantized)
            return loss if aux is None else loss + aux

    def train(self) -> FitResult:
        try:
            return super().train()
        finally:  # the final evaluation and predictions decode with the decoder's own steps
            self.decoder.inference_steps = self.decode_steps
