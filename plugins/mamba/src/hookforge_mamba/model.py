"""The ``mamba`` model: transformers' Mamba (``variant: mamba``) or Mamba2 (``variant: mamba2``)
trained from scratch on long documents, by hookforge-torch's ``supervised`` loop.

Two tasks, chosen from the data (``task: auto``): document classification (single- or
multi-label, a pooling head from :mod:`hookforge_mamba.heads`) when the text source has labels,
causal language modelling (next-token loss; perplexity from the ``perplexity`` evaluator) when
it has none (``data.label_column: null``).

The tokenizer is trained on the training split with the ``tokenizers`` library
(``tokenizer: {train: {vocab_size, kind}}``) or read from a directory (``tokenizer: PATH``); it is
saved with every checkpoint (``tokenizer/tokenizer.json``), and resume and predict read that copy,
never a retrained one.

On CUDA with ``mamba-ssm`` and ``causal-conv1d`` importable (``pip install hookforge-mamba[cuda]``)
transformers runs the fused kernels; everywhere else its pure-PyTorch path. Which one ran is
recorded in run.json under ``mamba.path``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import CheckpointError, ConfigError, DataError, did_you_mean
from hookforge.types import Dataset, DatasetInfo, Predictions, Split
from hookforge_torch.hf import quiet_transformers
from hookforge_torch.model import TorchModel
from hookforge_torch.perplexity import LM_COLUMNS
from hookforge_torch.tokens import (
    TokenBatches,
    TokenizerTraining,
    check_training,
    load_tokenizer,
    train_tokenizer,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

MAMBA_FILE = "mamba.json"
TOKENIZER_DIR = "tokenizer"
KERNEL_PACKAGES = ("mamba_ssm", "causal_conv1d")
# A small model that trains in seconds on a CPU; any field of MambaConfig / Mamba2Config overrides.
DEFAULTS = {"hidden_size": 64, "num_hidden_layers": 2, "state_size": 16, "expand": 2,
            "conv_kernel": 4}
MAMBA2_DEFAULTS = {"head_dim": 16, "n_groups": 1, "chunk_size": 64}


class TokenizerSource(ComponentConfig):
    train: TokenizerTraining = Field(default_factory=TokenizerTraining,
                                     description="train one on the training split")


class MambaSettings(ComponentConfig):
    variant: Literal["mamba", "mamba2"] = Field("mamba", description="transformers' MambaModel or "
                                                                     "Mamba2Model")
    task: Literal["auto", "classification", "lm"] = Field(
        "auto", description="auto: classification when the data has labels, else language modelling")
    config: dict[str, Any] = Field(default_factory=dict, description=(
        "MambaConfig / Mamba2Config fields over the small defaults (hidden_size 64, 2 layers, "
        "state_size 16, expand 2; mamba2: head_dim 16, n_groups 1, chunk_size 64)"))
    tokenizer: str | TokenizerSource = Field(
        default_factory=TokenizerSource,
        description="{train: {vocab_size, kind: bpe|wordpiece}} or a tokenizer directory",
        json_schema_extra={"path": True})
    pooling: Literal["mean", "last", "attention"] = Field(
        "mean", description="classification: how the token states become one vector")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the classification head")
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: probability for a label")
    kernels: Literal["auto", "required"] = Field(
        "auto", description="auto: the fused CUDA kernels where installed, else pure PyTorch; "
                            "required: refuse to run without them")
    max_chunks: int | None = Field(None, ge=2, description=(
        "classification, mamba2: read documents of up to max_chunks x data.max_length tokens in "
        "chunks of data.max_length, carrying the recurrent state (null: truncate at max_length)"))


def kernels_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in KERNEL_PACKAGES)


def _config_class(variant: str) -> Any:
    from transformers import Mamba2Config, MambaConfig

    return Mamba2Config if variant == "mamba2" else MambaConfig


def backbone_config(settings: MambaSettings, vocab_size: int, pad_token_id: int) -> Any:
    """The MambaConfig/Mamba2Config for these settings; an unknown field or a Mamba2 head layout
    that does not fit is a one-line ConfigError."""
    cls = _config_class(settings.variant)
    known = set(cls().to_dict())
    for key in settings.config:
        if key not in known:
            raise ConfigError(f"model.config.{key}: not a {cls.__name__} field"
                              f"{did_you_mean(key, known)}")
    variant_defaults = MAMBA2_DEFAULTS if settings.variant == "mamba2" else {
        # off CUDA, v1's scan is a Python loop over tokens; mambapy's parallel scan is the same
        # recurrence computed in log(length) steps
        "use_mambapy": importlib.util.find_spec("mambapy") is not None}
    fields = {**DEFAULTS, **variant_defaults, **settings.config, "vocab_size": vocab_size,
              "pad_token_id": pad_token_id}
    if settings.variant == "mamba2":
        inner = fields["expand"] * fields["hidden_size"]
        if inner % fields["head_dim"]:
            raise ConfigError(f"model.config: expand x hidden_size = {inner} is not a multiple of "
                              f"head_dim={fields['head_dim']} (Mamba2 splits it into heads)")
        fields.setdefault("num_heads", inner // fields["head_dim"])
        if fields["num_heads"] * fields["head_dim"] != inner:
            raise ConfigError(f"model.config: num_heads x head_dim = "
                              f"{fields['num_heads'] * fields['head_dim']} must equal expand x "
                              f"hidden_size = {inner}")
    return cls(**fields)


class MambaModel(TokenBatches, TorchModel):
    """Long-document classifier or language model on Mamba layers (see the module docstring)."""

    Config = MambaSettings
    padding_side = "left"  # exact for a recurrent model, and the last position is the last token
    predict_batch_size = 16  # long documents

    # -- before anything is read -------------------------------------------------------------------
    def preflight(self, run: Any) -> None:
        c = self.config
        if c.kernels == "required" and not kernels_installed():
            raise ConfigError("model.kernels=required: the fused Mamba kernels (mamba-ssm, "
                              "causal-conv1d) are not installed; pip install 'hookforge-mamba[cuda]' "
                              "on a CUDA machine, or set model.kernels=auto")
        if c.kernels == "required":
            self._check_cuda(run)
        if c.max_chunks is not None and c.variant != "mamba2":
            raise ConfigError("model.max_chunks needs model.variant=mamba2: transformers' Mamba (v1) "
                              "scan starts every call from a zero state, so the state carried "
                              "from one chunk to the next would be dropped")
        if c.max_chunks is not None and c.task == "lm":
            raise ConfigError("model.max_chunks is for classification; a language model reads "
                              "up to data.max_length tokens")
        backbone_config(c, vocab_size=64, pad_token_id=0)  # unknown fields, Mamba2 head layout
        if isinstance(c.tokenizer, TokenizerSource):
            check_training(c.tokenizer.train)
        data = run.config.data
        max_length = getattr(data.options, "max_length", None) if data is not None else None
        if isinstance(c.tokenizer, str):
            limit = load_tokenizer(c.tokenizer).model_max_length
            if max_length is not None and limit < 1_000_000 and max_length > limit:
                raise ConfigError(f"data.max_length={max_length} is above the tokenizer's limit "
                                  f"({limit} tokens, model_max_length of {c.tokenizer})")

    @staticmethod
    def _loop_device(run: Any) -> str:
        loop = run.config.loop
        return str(getattr(loop.options, "device", "auto")) if loop is not None else "auto"

    def _check_cuda(self, run: Any) -> None:
        import torch

        device = self._loop_device(run)
        if not torch.cuda.is_available() or device == "cpu":
            raise ConfigError("model.kernels=required: the fused Mamba kernels run on CUDA only, "
                              f"and this run has no CUDA device (loop.device={device})")

    # -- building ----------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return "lm" if self.info.task == "language_modeling" else "classification"

    def validate_data(self, dataset: Dataset) -> None:
        wanted = self.config.task
        task = dataset.task
        if task not in ("classification", "multilabel", "language_modeling"):
            raise DataError(f"model 'mamba' classifies texts or models language; the data's task "
                            f"is {task}")
        if wanted == "lm" and task != "language_modeling":
            raise DataError("model.task=lm needs unlabelled texts (data.label_column: null)")
        if wanted == "classification" and task == "language_modeling":
            raise DataError("model.task=classification needs labels: the data has none "
                            "(set data.label_column)")
        first = dataset.split("train").X[:1]
        if len(first) and not isinstance(first[0], str):
            raise DataError("model 'mamba' needs texts: use the 'text' data source")

    def build(self, run: Any, dataset: Dataset) -> None:
        c = self.config
        if run.resume_from is not None and (run.resume_from.path / TOKENIZER_DIR).is_dir():
            self.tokenizer = load_tokenizer(run.resume_from.path / TOKENIZER_DIR, "checkpoint")
        elif isinstance(c.tokenizer, str):
            self.tokenizer = load_tokenizer(c.tokenizer)
        else:
            self.tokenizer = train_tokenizer(list(dataset.split("train").X), c.tokenizer.train)
        super().build(run, dataset)
        path = self.kernel_path(run)
        if run.record is not None and run.primary:
            run.record.update_info(mamba={"variant": c.variant, "path": path, "task": self.task,
                                          "vocab_size": len(self.tokenizer),
                                          "parameters": sum(p.numel() for p in self.module.parameters())})
        run.emit("mamba", variant=c.variant, path=path)

    def kernel_path(self, run: Any) -> str:
        """'cuda-kernels' when transformers will call mamba-ssm/causal-conv1d, else 'torch'."""
        import torch

        device = self._loop_device(run)
        on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        return "cuda-kernels" if on_cuda and kernels_installed() else "torch"

    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        quiet_transformers()
        from hookforge_mamba.heads import MambaClassifier

        c = self.config
        config = backbone_config(c, vocab_size=len(self.tokenizer),
                                 pad_token_id=self.tokenizer.pad_token_id or 0)
        if self.task == "lm":
            from transformers import Mamba2ForCausalLM, MambaForCausalLM

            cls = Mamba2ForCausalLM if c.variant == "mamba2" else MambaForCausalLM
            return cls(config)
        from transformers import Mamba2Model, MambaModel

        backbone = (Mamba2Model if c.variant == "mamba2" else MambaModel)(config)
        return MambaClassifier(backbone, c.pooling, len(info.classes or []), c.dropout,
                               self.chunk_length())

    def chunk_length(self) -> int | None:
        chunked = self.config.max_chunks and self.task == "classification"
        return int(self.info.extra.get("max_length", 128)) if chunked else None

    def max_tokens(self) -> int:
        length = int(self.info.extra.get("max_length", 128))
        return length * (self.config.max_chunks or 1) if self.chunk_length() else length

    # -- batches and outputs -----------------------------------------------------------------------
    def collate(self, split: Split, indices: Any, cache: bool = True) -> dict[str, Any]:
        batch = super().collate(split, indices, cache)
        if self.task == "lm":  # the targets are the texts
            batch["y"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return batch

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.task == "classification":
            return self.module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        import torch
        import torch.nn.functional as F

        logits = self.module(input_ids=batch["input_ids"],
                             attention_mask=batch["attention_mask"]).logits
        targets = batch["y"][:, 1:]
        nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                              ignore_index=-100, reduction="none").view_as(targets)
        counted = (targets != -100)
        # per text: summed NLL and predicted tokens, so loss and perplexity weight tokens
        return torch.stack([nll.sum(1), counted.sum(1).to(nll.dtype)], dim=1)

    def compute_loss(self, batch: dict[str, Any], outputs: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return super().compute_loss(batch, outputs)
        return outputs[:, 0].sum() / outputs[:, 1].sum().clamp(min=1)

    def to_predictions(self, outputs: torch.Tensor) -> Predictions:
        if self.task == "lm":
            return Predictions(outputs.double().numpy(), classes=list(LM_COLUMNS),
                               task="language_modeling")
        return super().to_predictions(outputs)

    # -- persistence: weights (safetensors), the tokenizer, and how to rebuild the network ---------
    def save(self, directory: Path) -> None:
        super().save(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        (directory / MAMBA_FILE).write_text(json.dumps({
            "variant": self.config.variant, "task": self.task, "vocab_size": len(self.tokenizer),
            "max_length": self.info.extra.get("max_length"), "max_chunks": self.config.max_chunks,
        }, indent=2))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        if not (directory / MAMBA_FILE).is_file() or not (directory / TOKENIZER_DIR).is_dir():
            raise CheckpointError(f"{directory} has no {MAMBA_FILE} and {TOKENIZER_DIR}/: it is "
                                  f"not a mamba checkpoint")
        self.tokenizer = load_tokenizer(directory / TOKENIZER_DIR, "checkpoint")
        super().load(directory, info)

