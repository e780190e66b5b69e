"""The ``causal_lm`` model: any transformers causal language model (Llama, Qwen, GPT-2 style) from
a local directory (``pretrained: DIR``), or a small random one (``config: {arch: llama, ...}``)
with a tokenizer trained on the training texts; LoRA adapters through peft (hookforge-bert's
wrapper), gradient checkpointing, bf16 weights, 8-/4-bit loading through bitsandbytes on CUDA.

Supervised fine-tuning runs on hookforge-torch's ``supervised`` loop: this class says how rows
become batches (prompt and completion tokens, the prompt masked from the loss; optionally several
examples packed into one row, each attending only to itself) and batches become a loss. Every
output row carries an example's summed NLL and token count, so validation reports the loss and
perplexity over completion tokens. ``predict`` generates (:mod:`hookforge_lm.generation`); with
the core's ``simple`` loop a model is scored as it is (a base model, before fine-tuning).

Nothing is fetched from a hub: every load is ``local_files_only``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig
from hookforge.errors import CheckpointError, ConfigError, DataError, did_you_mean
from hookforge.types import Dataset, DatasetInfo, Predictions, Split
from hookforge_bert.lora import ADAPTER_FILE, LoraSettings, restore_adapter, save_adapter, with_lora
from hookforge_lm.generation import GenerationSettings
from hookforge_torch.hf import enable_checkpointing, quiet_transformers
from hookforge_torch.model import TorchModel
from hookforge_torch.perplexity import LM_COLUMNS
from hookforge_torch.tokens import TokenBatches, TokenizerTraining, check_training, load_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    import torch

LM_FILE = "lm.json"
TOKENIZER_DIR = "tokenizer"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# short names for the fields of a tiny config, mapped to transformers' own
ALIASES = {"layers": "num_hidden_layers", "heads": "num_attention_heads",
           "kv_heads": "num_key_value_heads", "context": "max_position_embeddings",
           "intermediate": "intermediate_size"}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


class CausalLoraSettings(LoraSettings):
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        description="Linear layers that get adapters: q_proj, k_proj, v_proj, o_proj, gate_proj, "
                    "up_proj, down_proj (Llama/Qwen); c_attn, c_proj, c_fc (GPT-2)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter input")


class TokenizerSource(ComponentConfig):
    train: TokenizerTraining = Field(
        default_factory=lambda: TokenizerTraining(kind="bytelevel", vocab_size=512,
                                                  split_digits=True, min_frequency=2),
        description="train one on the training texts (byte-level BPE, one token per digit)")


class CausalLMConfig(ComponentConfig):
    pretrained: str | None = Field(None, description="a local model directory (config.json, "
                                                     "weights, tokenizer)",
                                   json_schema_extra={"path": True})
    config: dict[str, Any] | None = Field(
        None, description="a random model instead: {arch: llama|qwen2|gpt2|..., hidden_size, "
                          "layers, heads, kv_heads, intermediate, context, ...} (any field of "
                          "the architecture's config)")
    tokenizer: str | TokenizerSource | None = Field(
        None, description="a tokenizer directory, or {train: {...}} (default: the pretrained "
                          "model's, or one trained on the data for a random model)",
        json_schema_extra={"path": True})
    lora: CausalLoraSettings = Field(default_factory=CausalLoraSettings)
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype of the weights (bfloat16 halves memory; training in it "
                               "is less exact than float32 weights with loop.amp)")
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none", description="load a pretrained model in 8 or 4 bits (bitsandbytes, CUDA only); "
                            "with lora: QLoRA")
    packing: bool = Field(False, description="pack a batch's examples into as few rows of "
                                             "data.max_length as fit, each attending only to itself")
    too_long: Literal["truncate", "error"] = Field(
        "truncate", description="an example or prompt longer than the context: cut the start "
                                "of the prompt, or stop with an error naming it")
    chat_template: Literal["auto", "never"] = Field(
        "auto", description="auto: format prompts with the tokenizer's chat template if it has one")
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    export_merged: bool = Field(False, description="also save the model with LoRA merged in, as "
                                                   "a transformers directory (merged/) in checkpoints")

    @model_validator(mode="after")
    def _one_source(self) -> CausalLMConfig:
        if (self.pretrained is None) == (self.config is None):
            raise ValueError("set exactly one of pretrained (a model directory) and config (a "
                             "random model, e.g. {arch: llama, hidden_size: 64, layers: 2})")
        if self.config is not None and self.quantization != "none":
            raise ValueError("quantization loads pretrained weights; a random model has none")
        return self


def resolve_model_dir(path: str | Path, field: str = "model.pretrained") -> Path:
    """The transformers directory ``path`` stands for: itself; for a hookforge run directory
    its best (else last) checkpoint; for a causal_lm checkpoint the merged model in it (which
    ``model.export_merged`` writes), so a stage takes the previous stage's checkpoint as is."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"{field}: directory {directory} does not exist")
    if (directory / "run.json").is_file():
        checkpoints = [directory / "checkpoints" / tag for tag in ("best", "last")]
        found = next((c for c in checkpoints if c.is_dir()), None)
        if found is None:
            raise ConfigError(f"{field}: the run {directory} has no checkpoint (best or last)")
        directory = found
    if (directory / LM_FILE).is_file():
        if not (directory / "merged" / "config.json").is_file():
            raise ConfigError(f"{field}: {directory} is a causal_lm checkpoint without a merged "
                              f"model; train it with model.export_merged=true")
        directory = directory / "merged"
    return directory


def check_model_dir(path: str, *, needs_tokenizer: bool, field: str = "model.pretrained") -> Path:
    """A local model directory with a config, weights and (unless given apart) a tokenizer."""
    directory = resolve_model_dir(path, field)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{field}: {directory} has no config.json: not a transformers "
                          f"model directory")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise ConfigError(f"{field}: {directory} has no weights (expected one of "
                          f"{', '.join(WEIGHT_FILES)})")
    if needs_tokenizer and not any((directory / f).is_file() for f in TOKENIZER_FILES):
        raise ConfigError(f"{field}: {directory} has no tokenizer (none of "
                          f"{', '.join(TOKENIZER_FILES)}); set model.tokenizer to a tokenizer "
                          f"directory")
    return directory


def random_config(fields: dict[str, Any], vocab_size: int, tokenizer: Any, context: int) -> Any:
    """The transformers config of a random model; an unknown architecture or field is a
    one-line ConfigError with a "did you mean"."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    fields = dict(fields)
    arch = str(fields.pop("arch", "llama"))
    if arch not in CONFIG_MAPPING:
        raise ConfigError(f"model.config.arch: unknown architecture '{arch}'"
                          f"{did_you_mean(arch, list(CONFIG_MAPPING.keys()))}")
    cls = CONFIG_MAPPING[arch]
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {}))
    options = dict(TINY)
    for key, value in fields.items():
        name = ALIASES.get(key, key)
        if name not in known:
            raise ConfigError(f"model.config.{key}: not a field of {cls.__name__}"
                              f"{did_you_mean(name, known | set(ALIASES))}")
        options[name] = value
    options.setdefault("intermediate_size", 4 * options["hidden_size"])
    options.setdefault("max_position_embeddings", context)
    if "num_key_value_heads" in known:
        options.setdefault("num_key_value_heads", options["num_attention_heads"])
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id}
    fields = {"tie_word_embeddings": True, **{k: v for k, v in special.items() if v is not None},
              **options, "vocab_size": vocab_size}  # the user's fields win, but the vocabulary
    try:
        return AutoConfig.for_model(arch, **fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.config: {str(exc).strip().splitlines()[0]}") from None


class CausalLM(TokenBatches, TorchModel):
    """A causal language model, fine-tuned on completions and generating (module docstring)."""

    Config = CausalLMConfig
    padding_side = "right"  # training batches; generation pads on the left itself

    # -- before anything is read -------------------------------------------------------------------
    def preflight(self, run: Any) -> None:
        c = self.config
        if c.pretrained is not None:
            check_model_dir(c.pretrained, needs_tokenizer=not isinstance(c.tokenizer, str))
        if isinstance(c.tokenizer, str):
            load_tokenizer(c.tokenizer)
        elif isinstance(c.tokenizer, TokenizerSource):
            check_training(c.tokenizer.train)
        if c.quantization != "none":
            self._check_quantization(run)
        if c.config is not None:
            arch = str(c.config.get("arch", "llama"))
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING

            if arch not in CONFIG_MAPPING:
                raise ConfigError(f"model.config.arch: unknown architecture '{arch}'"
                                  f"{did_you_mean(arch, list(CONFIG_MAPPING.keys()))}")

    def _check_quantization(self, run: Any) -> None:
        import importlib.util

        import torch

        loop = run.config.loop
        device = str(getattr(loop.options, "device", "auto")) if loop is not None else "auto"
        if not torch.cuda.is_available() or device == "cpu":
            raise ConfigError(f"model.quantization={self.config.quantization} needs a CUDA device "
                              f"(bitsandbytes); this run has none (loop.device={device}); set "
                              f"model.quantization=none")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(f"model.quantization={self.config.quantization} needs bitsandbytes "
                              f"(pip install 'hookforge-lm[cuda]')")

    # -- building ----------------------------------------------------------------------------------
    def validate_data(self, dataset: Dataset) -> None:
        if dataset.task != "generation":
            raise DataError(f"model 'causal_lm' learns completions of prompts; the data's task is "
                            f"{dataset.task} (use the 'tasks' or 'jsonl' data source)")

    def build(self, run: Any, dataset: Dataset) -> None:
        self.tokenizer = self._tokenizer(run, dataset)
        super().build(run, dataset)
        total = sum(p.numel() for p in self.module.parameters())
        trainable = self.trainable_parameters()
        if run.record is not None and run.primary:
            run.record.update_info(lm={"parameters": total, "trainable": trainable,
                                       "vocab_size": len(self.tokenizer),
                                       "lora": self.config.lora.enabled,
                                       "base": str(resolve_model_dir(self.config.pretrained).resolve())
                                       if self.config.pretrained else None})
        run.emit("parameters", trainable=trainable, total=total, lora=self.config.lora.enabled)

    def _tokenizer(self, run: Any, dataset: Dataset | None) -> Any:
        c = self.config
        if run is not None and run.resume_from is not None and \
                (run.resume_from.path / TOKENIZER_DIR).is_dir():
            return load_tokenizer(run.resume_from.path / TOKENIZER_DIR, "checkpoint")
        if isinstance(c.tokenizer, str):
            tokenizer = load_tokenizer(c.tokenizer)
        elif c.pretrained is not None and c.tokenizer is None:
            tokenizer = load_tokenizer(resolve_model_dir(c.pretrained), "model.pretrained")
        else:
            from hookforge_torch.tokens import train_tokenizer

            assert dataset is not None
            training = (c.tokenizer or TokenizerSource()).train
            train = dataset.split("train")
            texts = [f"{p}{a}" for p, a in zip(train.X["prompt"], train.y, strict=True)]
            tokenizer = train_tokenizer(texts, training)
        if tokenizer.pad_token_id is None:  # GPT-2 style tokenizers have none: pad with EOS
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    @property
    def context(self) -> int:
        """Tokens the model attends over (its position limit)."""
        limit = getattr(self.net.config, "max_position_embeddings", None) or \
            getattr(self.net.config, "n_positions", None)
        return int(limit or self.max_tokens() + self.config.generation.max_new_tokens)

    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        quiet_transformers()
        import torch
        from transformers import AutoModelForCausalLM

        c = self.config
        dtype = getattr(torch, c.dtype)
        max_length = int(info.extra.get("max_length", 256))
        if c.config is not None:
            config = random_config(c.config, len(self.tokenizer), self.tokenizer,
                                   max_length + c.generation.max_new_tokens)
            module = AutoModelForCausalLM.from_config(config, dtype=dtype)
        else:
            module = self._pretrained(dtype)
        if module.get_input_embeddings().num_embeddings < len(self.tokenizer):
            module.resize_token_embeddings(len(self.tokenizer))
        limit = getattr(module.config, "max_position_embeddings", None) or \
            getattr(module.config, "n_positions", None)
        if isinstance(limit, int) and max_length > limit:
            raise ConfigError(f"data.max_length={max_length} is above the model's context "
                              f"({limit} positions)")
        if c.gradient_checkpointing:
            enable_checkpointing(module)
            module.config.use_cache = False
            if c.lora.enabled:  # frozen embeddings: the checkpointed blocks need inputs with grads
                module.enable_input_require_grads()
        if c.lora.enabled:
            if c.quantization != "none":
                from peft import prepare_model_for_kbit_training

                module = prepare_model_for_kbit_training(module, c.gradient_checkpointing)
            module = with_lora(module, c.lora, "CAUSAL_LM")
        return module

    def _pretrained(self, dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        c = self.config
        path = check_model_dir(c.pretrained, needs_tokenizer=False)
        options: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
        if c.quantization != "none":
            import torch
            from transformers import BitsAndBytesConfig

            options["quantization_config"] = BitsAndBytesConfig(
                load_in_8bit=c.quantization == "8bit", load_in_4bit=c.quantization == "4bit",
                bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")
            options["device_map"] = {"": 0}
        try:
            return AutoModelForCausalLM.from_pretrained(path, **options)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"model.pretrained: cannot load {path}: "
                              f"{str(exc).strip().splitlines()[0]}") from None

    def fit(self, run: Any, dataset: Dataset) -> None:
        """With the ``simple`` loop: nothing to train, the model is scored as it is."""

    # -- batches -------------------------------------------------------------------------------------
    def formatter(self) -> Any:
        from hookforge_lm.formatting import Formatter

        return Formatter(self.tokenizer, self.config.chat_template, self.config.too_long)

    def _tokenize(self, split: Split) -> dict[str, Any]:
        import numpy as np

        encoded = self.formatter().encode(split.X, split.y if split.y is not None else
                                          [""] * len(split.X), self.max_tokens(), "data")
        return {"ids": encoded.ids, "prompt": np.asarray(encoded.prompt_lengths),
                "lengths": np.array([len(i) for i in encoded.ids])}

    def max_tokens(self) -> int:
        return int(self.info.extra.get("max_length", 256))

    def batch_plan(self, split: Split, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                   drop_last: bool = False) -> list[Any]:
        from hookforge_lm.data import ceiling

        allowed = ceiling(self.info.extra.get("curriculum"), epoch)
        if not shuffle or allowed >= 1.0:
            return super().batch_plan(split, batch_size, seed=seed, epoch=epoch, shuffle=shuffle,
                                      drop_last=drop_last)
        import numpy as np

        # A curriculum: this epoch draws only instances at or below its difficulty ceiling, as
        # many as a full epoch has (so the step count and the schedule stay what they were),
        # seeded by (seed, epoch) like every plan
        difficulty = np.asarray(split.X["difficulty"], dtype=float)
        pool = np.flatnonzero(difficulty <= allowed + 1e-9)
        if len(pool) == 0:
            pool = np.argsort(difficulty)[:batch_size]
        rng = np.random.default_rng([seed, epoch])
        n = len(difficulty)
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-n // len(pool)))])[:n]
        stop = n - n % batch_size if drop_last else n
        return [order[i:i + batch_size] for i in range(0, stop, batch_size)]

    def collate(self, split: Split, indices: Any, cache: bool = True) -> dict[str, Any]:
        encoded = self._encoded(split, cache)
        rows = [encoded["ids"][i] for i in indices]
        prompt = [int(encoded["prompt"][i]) for i in indices]
        if self.config.packing and len(rows) > 1:
            from hookforge_lm.packing import pack

            return pack(rows, prompt, self.max_tokens(), self.tokenizer.pad_token_id or 0)
        input_ids, mask = self.pad(rows)
        labels = input_ids.masked_fill(mask == 0, -100)
        for k, length in enumerate(prompt):
            labels[k, :length] = -100  # the prompt is context, not a target
        return {"input_ids": input_ids, "attention_mask": mask, "y": labels}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        extra = {"position_ids": batch["position_ids"]} if "position_ids" in batch else {}
        logits = self.module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             use_cache=False, **extra).logits
        targets = batch["y"][:, 1:]
        nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                              ignore_index=-100, reduction="none").view_as(targets)
        counted = (targets != -100).to(nll.dtype)
        if "example" not in batch:  # one example per row
            return torch.stack([nll.sum(1), counted.sum(1)], dim=1)
        # packed rows: add each token's NLL to the example it belongs to
        example = batch["example"][:, 1:].flatten()
        n = int(batch["n_examples"])
        keep = example >= 0
        sums = torch.zeros(n, dtype=nll.dtype, device=nll.device).index_add_(
            0, example[keep], nll.flatten()[keep])
        tokens = torch.zeros(n, dtype=nll.dtype, device=nll.device).index_add_(
            0, example[keep], counted.flatten()[keep])
        return torch.stack([sums, tokens], dim=1)

    def compute_loss(self, batch: dict[str, Any], outputs: torch.Tensor) -> torch.Tensor:
        return outputs[:, 0].sum() / outputs[:, 1].sum().clamp(min=1)

    def to_predictions(self, outputs: torch.Tensor) -> Predictions:
        return Predictions(outputs.double().numpy(), classes=list(LM_COLUMNS),
                           task="language_modeling")

    # -- generation ----------------------------------------------------------------------------------
    def predict(self, inputs: Any) -> Predictions:
        """Completions of the prompts (a DataFrame from the data source, or a list of strings);
        with a text environment's data, rows with a ``seed`` play that episode to its end."""
        import pandas as pd

        from hookforge_lm.generation import generate

        frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame({"prompt": list(inputs)})
        if "seed" in frame.columns and "text_env" in self.info.extra:
            from hookforge_lm.episodes import play_greedy

            return play_greedy(self, [int(s) for s in frame["seed"]])
        if "prompt" not in frame.columns:
            raise DataError("model 'causal_lm' generates from prompts: the inputs have no "
                            "'prompt' column")
        return generate(self.net, self.formatter(), frame, self.config.generation, self.context,
                        self.device)

    # -- persistence -----------------------------------------------------------------------------------
    @property
    def _adapter_only(self) -> bool:
        return self.config.lora.enabled and self.config.pretrained is not None

    def save(self, directory: Path) -> None:
        if self._adapter_only:
            save_adapter(self.net, directory / ADAPTER_FILE, "causal_lm")
        else:
            super().save(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        (directory / LM_FILE).write_text(json.dumps({
            "weights": ADAPTER_FILE if self._adapter_only else "full",
            "base": str(resolve_model_dir(self.config.pretrained).resolve())
            if self.config.pretrained else None,
            "lora": self.config.lora.model_dump(), "max_length": self.max_tokens(),
            "vocab_size": len(self.tokenizer)}, indent=2))
        if self.config.export_merged:
            self.export_merged(directory / "merged")

    def restore_weights(self, directory: Path) -> None:
        if self._adapter_only:
            restore_adapter(self.net, directory / ADAPTER_FILE)
        else:
            super().restore_weights(directory)

    def export_merged(self, target: Path) -> Path:
        """The model with any adapter merged in, as a plain transformers directory that
        ``AutoModelForCausalLM.from_pretrained`` (and ``model.pretrained``) loads."""
        from hookforge_bert.lora import export_merged

        return export_merged(self.net, self.tokenizer, target, self.config.lora.enabled)

    def load(self, directory: Path, info: DatasetInfo) -> None:
        if not (directory / LM_FILE).is_file() or not (directory / TOKENIZER_DIR).is_dir():
            raise CheckpointError(f"{directory} has no {LM_FILE} and {TOKENIZER_DIR}/: it is not "
                                  f"a causal_lm checkpoint")
        self.tokenizer = load_tokenizer(directory / TOKENIZER_DIR, "checkpoint")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        super().load(directory, info)
