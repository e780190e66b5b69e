"""The ``autoencoder`` model: an encoder, a latent space and a decoder, each chosen by name.

Trained by hookforge-torch's engine (the ``ae`` loop): this class says how inputs become batches
(the target of a reconstruction is the input itself), what the loss is (reconstruction plus the
latent space's own term: VQ commitment, VAE KL), and what a prediction is: per row, the
reconstruction error (the anomaly score), the latent and, for ``vq``, the code index.
Inputs are scaled with statistics of the training split, kept as buffers of the module, so a
checkpoint holds everything needed to reconstruct new rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError, DataError
from hookforge.subcomponents import Sub, sub_field
from hookforge.types import Predictions, Split
from hookforge_torch.model import TorchModel

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from hookforge.types import Dataset, DatasetInfo

TASK = "reconstruction"


@dataclass
class Reconstructions(Predictions):
    """``y_pred``: each row's reconstruction error (mean squared, in the scaled space)."""

    abs_errors: Any = None
    feature_errors: Any = None  # mean squared error of each feature over the rows
    latents: Any = None
    codes: Any = None  # VQ code indices, or None
    codebook_size: int | None = None
    labels: Any = None
    task: str = TASK
    extra: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame({"reconstruction_error": self.y_pred, "anomaly_score": self.y_pred,
                              "abs_error": self.abs_errors})
        if self.codes is not None:
            frame["code"] = self.codes
        for i in range(self.latents.shape[1] if self.latents is not None else 0):
            frame[f"latent_{i}"] = self.latents[:, i]
        return frame


class AutoEncoderConfig(ComponentConfig):
    encoder: Sub("encoder") = sub_field("mlp", "the encoder (hookforge.encoders)")
    decoder: Sub("decoder") = sub_field("mlp", "the decoder (hookforge.decoders)")
    latent: Sub("latent") = sub_field("none", "the latent space (hookforge.latents)")
    latent_dim: int = Field(16, ge=1, description="size of the encoder's output")
    input_shape: list[int] | None = Field(None, description=(
        "the shape of one input, e.g. [1, 8, 8] for the digits as images (default: flat, or a "
        "square one-channel image for a conv encoder when the feature count is a square)"))
    scale: Literal["none", "standardize", "minmax"] = Field(
        "minmax", description="input scaling from the training split (kept in the checkpoint)")
    loss: Literal["mse", "l1"] = Field("mse", description="reconstruction loss")


class AutoEncoder(TorchModel):
    """An autoencoder of named parts: ``model.encoder``, ``model.latent``, ``model.decoder``."""

    Config = AutoEncoderConfig
    default_loop = "ae"

    # -- the network -------------------------------------------------------------------------------
    def validate_data(self, dataset: Dataset) -> None:
        if dataset.info.n_features is None:
            raise DataError("model 'autoencoder' needs feature arrays (the sklearn, csv, parquet "
                            "or arrays sources)")

    def input_shape(self, info: DatasetInfo) -> list[int]:
        n = int(info.n_features or 0)
        shape = self.config.input_shape
        if shape is None:
            side = math.isqrt(n)
            image = "conv" in (self.config.encoder.name, self.config.decoder.name)
            shape = [1, side, side] if image and side * side == n else [n]
        if math.prod(shape) != n:
            raise ConfigError(f"model.input_shape {shape} holds {math.prod(shape)} values; the data "
                              f"has {n} features")
        return list(shape)

    def build(self, run: Any, dataset: Dataset) -> None:
        super().build(run, dataset)
        import numpy as np

        x = np.asarray(dataset.split("train").X, dtype=np.float64)
        if self.config.scale == "standardize":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        elif self.config.scale == "minmax":
            shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        self.module.set_scaling(shift, scale)
        run.emit("autoencoder", encoder=self.config.encoder.name, decoder=self.config.decoder.name,
                 latent=self.config.latent.name, input_shape=self.input_shape(dataset.info))

    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        import torch

        c = self.config
        shape = self.input_shape(info)
        n = math.prod(shape)
        encoder = c.encoder.create().module(shape, c.latent_dim)
        latent_part = c.latent.create()
        latent = latent_part.module(c.latent_dim)
        decoder_in = latent_part.output_dim(c.latent_dim)
        decoder = c.decoder.create().module(shape, decoder_in)
        with torch.no_grad():  # the parts must fit: say which do not, with their sizes
            probe = torch.zeros(2, *shape)
            encoder.eval()
            encoded = encoder(probe)
            if tuple(encoded.shape) != (2, c.latent_dim):
                raise ConfigError(f"model.encoder '{c.encoder.name}' outputs {tuple(encoded.shape[1:])} "
                                  f"per input, but model.latent '{c.latent.name}' expects "
                                  f"model.latent_dim={c.latent_dim}")
            decoder.eval()
            decoded = decoder(torch.zeros(2, decoder_in))
            if tuple(decoded.shape[1:]) != tuple(shape):
                raise ConfigError(f"model.decoder '{c.decoder.name}' outputs "
                                  f"{list(decoded.shape[1:])} from {decoder_in} latent values, but "
                                  f"the inputs have shape {shape}")
        loss = c.loss

        class AENet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.latent, self.decoder = encoder, latent, decoder
                self.register_buffer("shift", torch.zeros(n))
                self.register_buffer("scale", torch.ones(n))

            def set_scaling(self, shift: Any, scale: Any) -> None:
                self.shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
                self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

            def scaled(self, x: torch.Tensor) -> torch.Tensor:
                return ((x - self.shift) / self.scale).reshape(x.shape[0], *shape)

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
                target = self.scaled(x)
                z = self.encoder(target)
                quantized, aux, codes = self.latent(z)
                return self.decoder(quantized), target, aux, codes, z

            def loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                error = reconstruction.float() - target.float()
                return error.abs().mean() if loss == "l1" else error.pow(2).mean()

        return AENet()

    # -- batches and the loss ------------------------------------------------------------------------
    def _split_tensors(self, split: Split) -> dict[str, torch.Tensor]:
        x = self.inputs_tensor(split.X)
        return {"x": x, "y": x}  # the target of a reconstruction is its input

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.module(batch["x"])

    def compute_loss(self, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        reconstruction, target, aux, _, _ = outputs
        return self.net.loss(reconstruction, target) + aux

    # -- inference -----------------------------------------------------------------------------------
    def run_split(self, split: Split, batch_size: int = 256, autocast: Any = None,
                  cache: bool = True) -> tuple[float | None, Predictions]:
        """The mean loss and every row's reconstruction error, latent and code, in one pass."""
        from contextlib import nullcontext

        import numpy as np
        import torch

        x = self.tensors(split, cache)["x"]
        was_training = self.module.training
        self.module.eval()
        squared, absolute, feature, latents, codes = [], [], None, [], []
        loss_sum = 0.0
        try:
            with torch.no_grad(), autocast or nullcontext():
                for start in range(0, len(x), batch_size):
                    reconstruction, target, aux, code, z = self.module(
                        x[start:start + batch_size].to(self.device))
                    error = (reconstruction.float() - target.float()).reshape(len(target), -1)
                    squared.append(error.pow(2).mean(1).cpu())
                    absolute.append(error.abs().mean(1).cpu())
                    rows = error.pow(2).sum(0).cpu()
                    feature = rows if feature is None else feature + rows
                    loss_sum += float(self.net.loss(reconstruction, target) + aux) * len(target)
                    latents.append(z.float().cpu())
                    if code is not None:
                        codes.append(code.cpu())
        finally:
            self.module.train(was_training)
        n = max(len(x), 1)
        latent_part = self.config.latent
        predictions = Reconstructions(
            y_pred=torch.cat(squared).numpy() if squared else np.zeros(0),
            abs_errors=torch.cat(absolute).numpy() if absolute else np.zeros(0),
            feature_errors=(feature / n).numpy() if feature is not None else None,
            latents=torch.cat(latents).numpy() if latents else None,
            codes=torch.cat(codes).numpy() if codes else None,
            codebook_size=getattr(latent_part.options, "codebook_size", None),
            labels=None if split.y is None else np.asarray(split.y))
        return loss_sum / n, predictions

    def predict(self, inputs: Any) -> Predictions:
        return self.run_split(Split(inputs, None), cache=False)[1]
