"""The ``ae`` loop: hookforge-torch's training engine (optimizers, schedulers, AMP, gradient
accumulation, early stopping, best/last checkpoints, exact resume), nothing re-implemented; the
model supplies the reconstruction loss."""

from __future__ import annotations

from hookforge_torch.loop import SupervisedLoop


class AELoop(SupervisedLoop):
    """Trains an autoencoder with the torch engine; the best checkpoint by val/loss."""
