"""``TorchModel``: the base class of every neural model (MLP here; BERT, autoencoders, Mamba in
their plugins). A subclass says how to create its ``torch.nn.Module``, how a batch becomes
outputs and a loss, and how outputs become predictions; the supervised loop does the rest.

Batches are dicts of tensors. The default data path suits array data (one ``x`` tensor per split,
indexed per batch, which avoids DataLoader overhead for in-memory data); text and sequence models
override :meth:`batch_plan` and :meth:`collate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookforge.components import Model
from hookforge.errors import DataError
from hookforge.types import Dataset, DatasetInfo, Predictions, Split

if TYPE_CHECKING:  # pragma: no cover - torch and numpy are imported lazily (start-up stays fast)
    import numpy as np
    import torch


class TorchModel(Model):
    """A model trained by the ``supervised`` loop (its default)."""

    default_loop = "supervised"

    module: torch.nn.Module
    info: DatasetInfo

    # -- what subclasses implement ---------------------------------------------------------------
    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        raise NotImplementedError

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.module(batch["x"])

    def compute_loss(self, batch: dict[str, Any], outputs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (with ``class_weights``) for classification, MSE for regression."""
        import torch.nn.functional as F

        if self.info.task == "classification":
            return F.cross_entropy(outputs.float(), batch["y"], weight=self.class_weights)
        if self.info.task == "multilabel":
            return F.binary_cross_entropy_with_logits(outputs.float(), batch["y"].float())
        return F.mse_loss(outputs.float().squeeze(-1), batch["y"].float())

    def to_predictions(self, outputs: torch.Tensor) -> Predictions:
        """Outputs of a whole split (concatenated) -> predictions."""
        import torch

        outputs = outputs.float()
        import numpy as np

        if self.info.task == "classification":
            scores = torch.softmax(outputs, dim=-1).numpy()
            return Predictions(scores.argmax(axis=1), scores, classes=self.info.classes,
                               task="classification")
        if self.info.task == "multilabel":  # a model's Config may set the label `threshold`
            scores = torch.sigmoid(outputs).numpy()
            threshold = getattr(getattr(self, "config", None), "threshold", 0.5)
            return Predictions((scores >= threshold).astype(np.int64), scores,
                               classes=self.info.classes, task="multilabel")
        return Predictions(outputs.squeeze(-1).numpy(), task=self.info.task)

    def validate_data(self, dataset: Dataset) -> None:
        """Check the data fits the model before training (labels in range...)."""

    # -- building and moving ---------------------------------------------------------------------
    def build(self, run: Any, dataset: Dataset) -> None:
        import torch

        self.validate_data(dataset)
        self.info = dataset.info
        torch.manual_seed(run.seed)  # the same seed gives the same initial weights
        self.module = self.create_module(dataset.info)
        self.device = torch.device("cpu")
        self.class_weights: torch.Tensor | None = None
        self._tensors: dict[int, tuple[Split, dict[str, torch.Tensor]]] = {}

    def to(self, device: Any) -> None:
        self.module.to(device)
        self.device = device
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)

    @property
    def net(self) -> torch.nn.Module:
        """The network itself, also while training wraps it (DistributedDataParallel)."""
        from hookforge_torch.engine import unwrap

        return unwrap(self.module)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    # -- data --------------------------------------------------------------------------------------
    def inputs_tensor(self, inputs: Any) -> torch.Tensor:
        import numpy as np
        import torch

        try:
            array = np.asarray(inputs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"inputs are not numeric: {exc}") from None
        if not np.isfinite(array).all():
            raise DataError("inputs contain NaN or infinite values")
        return torch.from_numpy(np.ascontiguousarray(array))

    def tensors(self, split: Split, cache: bool = True) -> dict[str, torch.Tensor]:
        """The split as tensors, converted once. The cache holds the split itself, so an id can
        never be reused by another split while its entry exists; one-off inputs skip the cache."""
        return self.cached(split, cache, self._split_tensors)

    def cached(self, split: Split, cache: bool, compute: Any) -> Any:
        """``compute(split)``, once per split while the split lives (subclasses cache their own
        encodings, e.g. token ids, through this too)."""
        entry = self._tensors.get(id(split))
        if entry is not None and entry[0] is split:
            return entry[1]
        value = compute(split)
        if cache:
            self._tensors[id(split)] = (split, value)
        return value

    def _split_tensors(self, split: Split) -> dict[str, torch.Tensor]:
        import numpy as np
        import torch

        tensors = {"x": self.inputs_tensor(split.X)}
        if split.y is not None:
            y = np.asarray(split.y)
            tensors["y"] = torch.from_numpy(y.astype(np.int64 if self.info.task == "classification"
                                                     else np.float32))
        return tensors

    def num_examples(self, split: Split) -> int:
        return len(split)

    def batch_plan(self, split: Split, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                   drop_last: bool = False) -> list[np.ndarray]:
        """Row indices of every batch of one epoch. The order depends only on (seed, epoch), so a
        resumed run replays exactly the batches an uninterrupted one would see."""
        import numpy as np

        n = self.num_examples(split)
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        return [order[i:i + batch_size] for i in range(0, stop, batch_size)]

    def collate(self, split: Split, indices: np.ndarray, cache: bool = True) -> dict[str, Any]:
        import torch

        if hasattr(split.X, "read_mask"):  # rows read from a file batch by batch (the h5 source)
            return self.read_batch(split, indices)
        index = torch.from_numpy(indices)
        return {k: v.index_select(0, index) for k, v in self.tensors(split, cache).items()}

    def read_batch(self, split: Split, indices: np.ndarray) -> dict[str, Any]:
        """A batch of :class:`~hookforge_torch.h5.H5Rows`: ``x``, ``mask`` where the file has
        one, and ``y`` as :meth:`_split_tensors` would make it."""
        import numpy as np
        import torch

        batch = {"x": self.inputs_tensor(split.X.read(indices))}
        mask = split.X.read_mask(indices)
        if mask is not None:
            batch["mask"] = torch.from_numpy(mask)
        if split.y is not None:
            y = np.asarray(split.y)[indices]
            batch["y"] = torch.from_numpy(y.astype(np.int64 if self.info.task == "classification"
                                                   else np.float32))
        return batch

    # -- inference ---------------------------------------------------------------------------------
    def run_split(self, split: Split, batch_size: int = 256, autocast: Any = None,
                  cache: bool = True) -> tuple[float | None, Predictions]:
        """Mean loss (when the split has targets) and predictions, in one pass in eval mode."""
        from contextlib import nullcontext

        import numpy as np
        import torch

        from hookforge_torch.engine import to_device

        was_training = self.module.training
        self.module.eval()
        outputs, loss_sum, count, targets = [], torch.zeros((), dtype=torch.float64), 0, False
        plan = self.batch_plan(split, batch_size, seed=0, epoch=0, shuffle=False)
        try:
            with torch.no_grad():
                for indices in plan:
                    batch = to_device(self.collate(split, indices, cache), self.device)
                    with autocast or nullcontext():
                        out = self.forward(batch)
                        if "y" in batch:  # targets: labels, or the inputs themselves (LM, AE)
                            loss = self.compute_loss(batch, out).detach().double().cpu()
                            loss_sum += loss * len(indices)
                            targets = True
                    count += len(indices)
                    outputs.append(out.detach().float().cpu())
        finally:
            self.module.train(was_training)
        merged = torch.cat(outputs) if outputs else torch.empty(0)
        order = np.concatenate(plan) if plan else np.arange(0)
        if len(order) and (order[1:] < order[:-1]).any():  # e.g. batches grouped by length
            merged = merged[torch.from_numpy(np.argsort(order, kind="stable"))]
        predictions = self.to_predictions(merged)
        return (float(loss_sum) / count if targets else None), predictions

    def predict(self, inputs: Any) -> Predictions:
        return self.run_split(Split(inputs, None), cache=False)[1]

    # -- persistence -------------------------------------------------------------------------------
    def restore_weights(self, directory: Path) -> None:
        """Load the weights that :meth:`save` wrote into the existing module (resume, and the best
        state at the end of training); models that save a part of their weights override both."""
        from hookforge_torch.checkpoint import load_weights

        load_weights(self.module, directory)

    def save(self, directory: Path) -> None:
        from hookforge_torch.checkpoint import save_weights

        save_weights(self.module, directory, {"model": self.plugin_name})

    def load(self, directory: Path, info: DatasetInfo) -> None:
        import torch

        self.info = info
        self.module = self.create_module(info)
        self.device = torch.device("cpu")
        self.class_weights = None
        self._tensors = {}
        self.restore_weights(directory)
        self.module.eval()
