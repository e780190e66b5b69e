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
EXAMPLES = 8  # rows kept for the reconstruction figures


@dataclass
class Reconstructions(Predictions):
    """``y_pred``: each row's reconstruction error (mean squared, in the scaled space)."""

    abs_errors: Any = None
    feature_errors: Any = None  # mean squared error of each feature over the rows
    latents: Any = None
    codes: Any = None  # VQ code indices, or None
    codebook_size: int | None = None
    labels: Any = None
    # the first rows (scaled inputs, reconstructions, masks) and their shape, for the figures
    examples: tuple[Any, Any, Any] | None = None
    input_shape: list[int] | None = None
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
        stored = (info.extra or {}).get("input_shape")
        if shape is None and stored and len(stored) > 1:  # sets or images from the source
            shape = list(stored)
        if shape is None:
            side = math.isqrt(n)
            image = "conv" in (self.config.encoder.name, self.config.decoder.name)
            shape = [1, side, side] if image and side * side == n else [n]
        if math.prod(shape) != n:
            raise ConfigError(f"model.input_shape {shape} holds {math.prod(shape)} values; the data "
                              f"has {n} features")
        return list(shape)

    def is_set(self) -> bool:
        """The decoder emits sets of points (scored with the Chamfer distance)."""
        return bool(getattr(self.config.decoder.cls, "set_output", False))

    def build(self, run: Any, dataset: Dataset) -> None:
        super().build(run, dataset)
        shape = self.input_shape(dataset.info)
        shift, scale = _statistics(dataset.split("train").X, shape, self.config.scale,
                                   per_last_axis=self.is_set() or _uses_mask(self.config.encoder))
        self.module.set_scaling(shift, scale)
        run.emit("autoencoder", encoder=self.config.encoder.name, decoder=self.config.decoder.name,
                 latent=self.config.latent.name, input_shape=shape)

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
        loss, set_output = c.loss, self.is_set()
        encoder_mask = _uses_mask(c.encoder)

        class AENet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.latent, self.decoder = encoder, latent, decoder
                self.register_buffer("shift", torch.zeros(n))
                self.register_buffer("scale", torch.ones(n))

            def set_scaling(self, shift: Any, scale: Any) -> None:
                self.shift.copy_(torch.as_tensor(shift, dtype=torch.float32).reshape(-1))
                self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32).reshape(-1))

            def scaled(self, x: torch.Tensor) -> torch.Tensor:
                flat = x.reshape(x.shape[0], -1)
                return ((flat - self.shift) / self.scale).reshape(x.shape[0], *shape)

            def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                        decode: bool = True) -> tuple[torch.Tensor, ...]:
                """(reconstruction, target, latent loss, codes, latent); without ``decode``
                (a diffusion decoder's training step) the decoder's input replaces the
                reconstruction."""
                target = self.scaled(x)
                z = self.encoder(target, mask) if encoder_mask else self.encoder(target)
                quantized, aux, codes = self.latent(z)
                if not decode:
                    return target, quantized, aux, codes, z
                return self.decoder(quantized), target, aux, codes, z

            def row_errors(self, reconstruction: torch.Tensor, target: torch.Tensor,
                           mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
                """Per row: squared and absolute error, and each feature's squared error summed
                over the row (sets: against each real point's nearest reconstructed point)."""
                if set_output:
                    from hookforge_autoencoder.gnn import chamfer

                    distance, features = chamfer(reconstruction, target, mask)
                    return distance, distance.sqrt(), features.sum(1)
                error = reconstruction.float() - target.float()
                if mask is not None and error.dim() == 3:  # padded elements do not count
                    weight = mask.unsqueeze(-1).to(error.dtype)
                    count = (weight.sum((1, 2)) * error.shape[-1]).clamp(min=1)
                    error = error * weight
                    return (error.pow(2).sum((1, 2)) / count, error.abs().sum((1, 2)) / count,
                            error.pow(2).reshape(len(error), -1))
                flat = error.reshape(len(error), -1)
                return flat.pow(2).mean(1), flat.abs().mean(1), flat.pow(2)

            def loss(self, reconstruction: torch.Tensor, target: torch.Tensor,
                     mask: torch.Tensor | None = None, aux: torch.Tensor | None = None
                     ) -> torch.Tensor:
                """The training loss: the reconstruction's (set, masked or plain) plus the
                latent space's own term; the plain case is two ops (the per-step hot path)."""
                if set_output or (mask is not None and reconstruction.dim() == 3):
                    squared, absolute, _ = self.row_errors(reconstruction, target, mask)
                    value = absolute.mean() if loss == "l1" else squared.mean()
                else:
                    error = reconstruction.float() - target.float()
                    value = error.abs().mean() if loss == "l1" else error.pow(2).mean()
                return value if aux is None else value + aux

        return AENet()

    # -- batches and the loss ------------------------------------------------------------------------
    def _split_tensors(self, split: Split) -> dict[str, torch.Tensor]:
        x = self.inputs_tensor(split.X)
        return {"x": x, "y": x}  # the target of a reconstruction is its input

    def read_batch(self, split: Split, indices: Any) -> dict[str, Any]:
        batch = super().read_batch(split, indices)
        batch.pop("y", None)  # labels are for the evaluator; the target is the input
        return batch

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.module(batch["x"], batch.get("mask"))

    def compute_loss(self, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        reconstruction, target, aux, _, _ = outputs
        return self.net.loss(reconstruction, target, batch.get("mask"), aux)

    # -- inference -----------------------------------------------------------------------------------
    def run_split(self, split: Split, batch_size: int = 256, autocast: Any = None,
                  cache: bool = True) -> tuple[float | None, Predictions]:
        """The mean loss and every row's reconstruction error, latent and code, in one pass
        (batch by batch from the file for the h5 source)."""
        from contextlib import nullcontext

        import numpy as np
        import torch

        from hookforge_torch.engine import to_device

        was_training = self.module.training
        self.module.eval()
        squared, absolute, feature, latents, codes = [], [], None, [], []
        loss_sum, rows, examples = 0.0, 0, None
        plan = self.batch_plan(split, batch_size, seed=0, epoch=0, shuffle=False)
        try:
            with torch.no_grad(), autocast or nullcontext():
                for indices in plan:
                    batch = to_device(self.collate(split, indices, cache), self.device)
                    reconstruction, target, aux, code, z = self.forward(batch)
                    mask = batch.get("mask")
                    sq, ab, per_feature = self.net.row_errors(reconstruction, target, mask)
                    squared.append(sq.float().cpu())
                    absolute.append(ab.float().cpu())
                    summed = per_feature.float().sum(0).cpu()
                    feature = summed if feature is None else feature + summed
                    if self.is_set():  # per-feature errors are per real point of a set
                        rows += int(mask.sum()) if mask is not None else len(indices) * len(target[0])
                    else:
                        rows += len(indices)
                    loss_sum += float(self.net.loss(reconstruction, target, mask, aux)) * len(indices)
                    latents.append(z.float().cpu())
                    if examples is None:
                        shown = slice(0, EXAMPLES)
                        examples = (target[shown].float().cpu().numpy(),
                                    reconstruction[shown].float().cpu().numpy(),
                                    None if mask is None else mask[shown].cpu().numpy())
                    if code is not None:
                        codes.append(code.cpu())
        finally:
            self.module.train(was_training)
        n = max(len(split), 1)
        latent_part = self.config.latent
        predictions = Reconstructions(
            y_pred=torch.cat(squared).numpy() if squared else np.zeros(0),
            abs_errors=torch.cat(absolute).numpy() if absolute else np.zeros(0),
            feature_errors=(feature / max(rows, 1)).numpy() if feature is not None else None,
            latents=torch.cat(latents).numpy() if latents else None,
            codes=torch.cat(codes).numpy() if codes else None,
            codebook_size=getattr(latent_part.options, "codebook_size", None),
            labels=None if split.y is None else np.asarray(split.y),
            examples=examples, input_shape=self.input_shape(self.info))
        return loss_sum / n, predictions

    def predict(self, inputs: Any) -> Predictions:
        return self.run_split(Split(inputs, None), cache=False)[1]


def _uses_mask(part: Any) -> bool:
    return bool(getattr(part.cls, "uses_mask", False))


def _statistics(X: Any, shape: list[int], kind: str, per_last_axis: bool) -> tuple[Any, Any]:
    """Shift and scale of every input value from the training rows, read chunk by chunk when
    they come from a file. ``per_last_axis`` (sets of points): one statistic per feature over
    every real point, so the scaling does not depend on a point's position in the set."""
    import numpy as np

    n = math.prod(shape)
    if kind == "none":
        return np.zeros(n), np.ones(n)
    chunks = X.chunks() if hasattr(X, "chunks") else [(np.asarray(X, dtype=np.float64), None)]
    width = shape[-1] if per_last_axis else n
    total, squares, count = np.zeros(width), np.zeros(width), np.zeros(width)
    low, high = np.full(width, np.inf), np.full(width, -np.inf)
    for values, mask in chunks:
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        if per_last_axis:
            values = values.reshape(-1, width)
            if mask is not None:
                values = values[np.asarray(mask).reshape(-1).astype(bool)]
        if not len(values):
            continue
        total += values.sum(0)
        squares += (values ** 2).sum(0)
        count += len(values)
        low, high = np.minimum(low, values.min(0)), np.maximum(high, values.max(0))
    count = np.maximum(count, 1)
    if kind == "standardize":
        mean = total / count
        shift, scale = mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    else:
        shift, scale = low, high - low
    shift = np.where(np.isfinite(shift), shift, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    if per_last_axis:
        shift, scale = np.tile(shift, n // width), np.tile(scale, n // width)
    return shift, scale
