"""Reward models: the ``preferences`` data source, the ``reward_model`` model and the
``preference`` evaluator.

A reward model scores a (prompt, completion) pair with one number. It is trained on preference
data (JSON lines of prompt, chosen, rejected) with the Bradley-Terry pairwise loss,
``-log sigmoid(r(chosen) - r(rejected))`` (Ouyang et al. 2022, as TRL's RewardTrainer), on
hookforge-torch's ``supervised`` loop; the network is transformers'
``AutoModelForSequenceClassification`` with one output (the score of the last token), from a
local directory or a small random config, LoRA optional (hookforge-bert's wrapper).

Batches hold the chosen and rejected texts of each pair together (one forward pass of 2B rows);
each output row is (r(chosen), r(rejected)), so validation reports the pairwise loss and the
``preference`` evaluator the accuracy (chosen scored higher) with its Jeffreys interval and the
mean margin. :meth:`RewardModel.score` gives the reward of completions: what an RL loop calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig, DataSource, Evaluator
from hookforge.errors import CheckpointError, DataError
from hookforge.splits import SplitConfig, fingerprint_bytes, seeded_split
from hookforge.types import Dataset, DatasetInfo, Predictions, Split
from hookforge_bert.lora import LoraSettings, with_lora
from hookforge_lm.model import (
    TOKENIZER_DIR,
    TokenizerSource,
    check_model_dir,
    random_config,
    resolve_model_dir,
)
from hookforge_torch.hf import enable_checkpointing, quiet_transformers
from hookforge_torch.model import TorchModel
from hookforge_torch.tokens import TokenBatches, check_training, load_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from hookforge.run import Run

REWARD_FILE = "reward.json"
FIELDS = ("prompt", "chosen", "rejected")


# -- data ---------------------------------------------------------------------------------------------
class PreferencesConfig(ComponentConfig):
    path: str = Field(..., description="JSON lines of {prompt, chosen, rejected}",
                      json_schema_extra={"path": True})
    max_length: int = Field(256, ge=8, description="tokens of prompt and completion together")
    split: SplitConfig = Field(default_factory=lambda: SplitConfig(val=0.1, test=0.1, stratify=False))


def read_pairs(path: str | Path) -> Any:
    """The preference rows of a file; a row missing a field is a DataError naming its line."""
    import pandas as pd

    from hookforge_lm.data import read_jsonl

    rows = read_jsonl(path)
    for number, row in enumerate(rows, 1):
        for name in FIELDS:
            if not isinstance(row.get(name), str):
                raise DataError(f"{path}: row {number}: no text field '{name}' (a preference row "
                                f"has {', '.join(FIELDS)})")
        if row["chosen"] == row["rejected"]:
            raise DataError(f"{path}: row {number}: chosen and rejected are the same text")
    return pd.DataFrame({name: [r[name] for r in rows] for name in FIELDS})


class PreferencesSource(DataSource):
    """Prompt, chosen, rejected rows from JSON lines (see the module docstring)."""

    Config = PreferencesConfig

    def load(self, run: Run) -> Dataset:
        import numpy as np

        c = self.config
        frame = read_pairs(c.path)
        text = "\x00".join(frame["prompt"] + "\x01" + frame["chosen"] + "\x01" + frame["rejected"])
        indices = seeded_split(run, np.zeros(len(frame)), "preference", c.split,
                               fingerprint=fingerprint_bytes(text.encode()), source=f"data.path {c.path}")
        splits = {name: Split(frame.iloc[idx].reset_index(drop=True), np.ones(len(idx)))
                  for name, idx in indices.items() if len(idx)}
        return Dataset(info=DatasetInfo(task="preference", extra={"max_length": c.max_length,
                                                                   "source": c.path}),
                       splits=splits)

    def read_inputs(self, run: Run, path: Path) -> Any:
        """Pairs to compare, or prompt/completion rows to score."""
        import pandas as pd

        from hookforge_lm.data import read_jsonl

        rows = read_jsonl(path)
        if all(isinstance(r.get("chosen"), str) for r in rows):
            return read_pairs(path)
        for number, row in enumerate(rows, 1):
            if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
                raise DataError(f"{path}: row {number}: give prompt and completion (to score) or "
                                f"prompt, chosen and rejected (to compare)")
        return pd.DataFrame({"prompt": [r["prompt"] for r in rows],
                             "completion": [r["completion"] for r in rows]})


# -- the model ----------------------------------------------------------------------------------------
class RewardLoraSettings(LoraSettings):
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"],
                                      description="Linear layers that get adapters")


class RewardConfig(ComponentConfig):
    pretrained: str | None = Field(None, description="a local model directory (a causal LM or a "
                                                     "classifier: a one-output head is added)",
                                   json_schema_extra={"path": True})
    config: dict[str, Any] | None = Field(None, description="a random model instead: {arch: llama, "
                                                            "hidden_size, layers, heads, ...}")
    tokenizer: str | TokenizerSource | None = Field(
        None, description="a tokenizer directory (e.g. the SFT run's checkpoint tokenizer/), or "
                          "{train: {...}}", json_schema_extra={"path": True})
    lora: RewardLoraSettings = Field(default_factory=RewardLoraSettings)
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward")

    @model_validator(mode="after")
    def _one_source(self) -> RewardConfig:
        if (self.pretrained is None) == (self.config is None):
            raise ValueError("set exactly one of pretrained (a model directory) and config (a "
                             "random model)")
        return self


class RewardModel(TokenBatches, TorchModel):
    """Scores (prompt, completion) pairs; trained on preferences (see the module docstring)."""

    Config = RewardConfig

    def preflight(self, run: Any) -> None:
        c = self.config
        if c.pretrained is not None:
            check_model_dir(c.pretrained, needs_tokenizer=not isinstance(c.tokenizer, str))
        if isinstance(c.tokenizer, str):
            load_tokenizer(c.tokenizer)
        elif isinstance(c.tokenizer, TokenizerSource):
            check_training(c.tokenizer.train)

    def validate_data(self, dataset: Dataset) -> None:
        if dataset.task != "preference":
            raise DataError(f"model 'reward_model' learns from preferences; the data's task is "
                            f"{dataset.task} (use the 'preferences' data source)")

    def build(self, run: Any, dataset: Dataset) -> None:
        c = self.config
        if run.resume_from is not None and (run.resume_from.path / TOKENIZER_DIR).is_dir():
            self.tokenizer = load_tokenizer(run.resume_from.path / TOKENIZER_DIR, "checkpoint")
        elif isinstance(c.tokenizer, str):
            self.tokenizer = load_tokenizer(c.tokenizer)
        elif c.pretrained is not None and c.tokenizer is None:
            self.tokenizer = load_tokenizer(resolve_model_dir(c.pretrained), "model.pretrained")
        else:
            from hookforge_torch.tokens import train_tokenizer

            train = dataset.split("train").X
            texts = [*(train["prompt"] + train["chosen"]), *(train["prompt"] + train["rejected"])]
            self.tokenizer = train_tokenizer(texts, (c.tokenizer or TokenizerSource()).train)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        super().build(run, dataset)

    def create_module(self, info: DatasetInfo) -> torch.nn.Module:
        quiet_transformers()
        from transformers import AutoModelForSequenceClassification

        c = self.config
        if c.config is not None:
            config = random_config(c.config, len(self.tokenizer), self.tokenizer,
                                   int(info.extra.get("max_length", 256)))
            config.num_labels = 1
            module = AutoModelForSequenceClassification.from_config(config)
        else:
            import warnings

            path = check_model_dir(c.pretrained, needs_tokenizer=False)
            with warnings.catch_warnings():  # "newly initialized: score.weight": the point
                warnings.simplefilter("ignore")
                module = AutoModelForSequenceClassification.from_pretrained(
                    path, num_labels=1, local_files_only=True, ignore_mismatched_sizes=True)
        module.config.pad_token_id = self.tokenizer.pad_token_id  # where a sequence ends
        if c.gradient_checkpointing:
            enable_checkpointing(module)
            if c.lora.enabled:
                module.enable_input_require_grads()
        if c.lora.enabled:
            module = with_lora(module, c.lora, "SEQ_CLS")  # the score head is trained and saved too
        return module

    # -- batches: prompt + chosen and prompt + rejected of each pair, side by side
    def _tokenize(self, split: Split) -> dict[str, Any]:
        import numpy as np

        from hookforge_lm.formatting import Formatter

        formatter = Formatter(self.tokenizer, "never")
        X = split.X
        if "chosen" in X.columns:
            chosen = formatter.encode(X, X["chosen"], self.max_tokens(), "data").ids
            rejected = formatter.encode(X, X["rejected"], self.max_tokens(), "data").ids
        else:  # prompt/completion rows to score: no pair
            chosen = formatter.encode(X, X["completion"], self.max_tokens(), "data").ids
            rejected = None
        lengths = np.array([max(len(a), len(b)) for a, b in zip(chosen, rejected or chosen, strict=True)])
        return {"chosen": chosen, "rejected": rejected, "lengths": lengths}

    def max_tokens(self) -> int:
        return int(self.info.extra.get("max_length", 256))

    def collate(self, split: Split, indices: Any, cache: bool = True) -> dict[str, Any]:
        import torch

        encoded = self._encoded(split, cache)
        rows = [encoded["chosen"][i] for i in indices]
        paired = encoded["rejected"] is not None
        if paired:
            rows += [encoded["rejected"][i] for i in indices]
        input_ids, mask = self.pad(rows)
        batch = {"input_ids": input_ids, "attention_mask": mask, "pairs": paired}
        if paired:
            batch["y"] = torch.ones(len(indices))  # chosen is preferred: what the loss needs
        return batch

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        scores = self.module(input_ids=batch["input_ids"],
                             attention_mask=batch["attention_mask"]).logits.squeeze(-1).float()
        if not batch["pairs"]:
            return scores[:, None]
        import torch

        half = scores.shape[0] // 2
        return torch.stack([scores[:half], scores[half:]], dim=1)

    def compute_loss(self, batch: dict[str, Any], outputs: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return -F.logsigmoid(outputs[:, 0] - outputs[:, 1]).mean()  # Bradley-Terry

    def to_predictions(self, outputs: torch.Tensor) -> Predictions:
        import numpy as np

        values = outputs.double().numpy()
        if values.shape[1] == 1:
            return Rewards(values[:, 0], task="reward")
        return Rewards((values[:, 0] > values[:, 1]).astype(np.int64), values, task="preference")

    def predict(self, inputs: Any) -> Predictions:
        return self.run_split(Split(inputs, None), batch_size=32, cache=False)[1]

    def score(self, prompts: list[str], completions: list[str]) -> Any:
        """The reward of each completion of its prompt (a float64 array)."""
        import pandas as pd

        return self.predict(pd.DataFrame({"prompt": prompts, "completion": completions})).y_pred

    # -- persistence: weights (safetensors) and the tokenizer
    def save(self, directory: Path) -> None:
        super().save(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        (directory / REWARD_FILE).write_text(json.dumps({
            "base": str(resolve_model_dir(self.config.pretrained).resolve())
            if self.config.pretrained else None, "lora": self.config.lora.enabled,
            "max_length": self.max_tokens()}, indent=2))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        if not (directory / REWARD_FILE).is_file():
            raise CheckpointError(f"{directory} has no {REWARD_FILE}: not a reward_model checkpoint")
        self.tokenizer = load_tokenizer(directory / TOKENIZER_DIR, "checkpoint")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        super().load(directory, info)


@dataclass
class Rewards(Predictions):
    """Scores of completions (``y_pred``), or of pairs (``scores``: chosen, rejected)."""

    def to_frame(self) -> Any:
        import numpy as np
        import pandas as pd

        if self.task == "reward":
            return pd.DataFrame({"reward": np.asarray(self.y_pred, dtype=float)})
        scores = np.asarray(self.scores, dtype=float)
        return pd.DataFrame({"chosen_reward": scores[:, 0], "rejected_reward": scores[:, 1],
                             "margin": scores[:, 0] - scores[:, 1],
                             "chosen_preferred": scores[:, 0] > scores[:, 1]})


# -- the evaluator ---------------------------------------------------------------------------------------
class PreferenceEvaluator(Evaluator):
    """Accuracy on held-out pairs (chosen scored higher) with its Jeffreys interval, and margins."""

    tasks = ("preference",)

    class Config(ComponentConfig):
        interval: float = Field(0.8, gt=0, lt=1, description="mass of the accuracy interval")

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, float]:
        import numpy as np

        from hookforge.compare import jeffreys_interval

        scores = np.asarray(predictions.scores, dtype=np.float64)
        if scores.size == 0:
            return {}
        margins = scores[:, 0] - scores[:, 1]
        wins = int((margins > 0).sum())
        low, high = jeffreys_interval(wins, len(margins), self.config.interval)
        return {"accuracy": wins / len(margins), "accuracy_low": low, "accuracy_high": high,
                "mean_margin": float(margins.mean()), "mean_chosen": float(scores[:, 0].mean()),
                "mean_rejected": float(scores[:, 1].mean())}
