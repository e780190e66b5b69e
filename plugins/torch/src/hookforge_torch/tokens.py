"""Texts as token batches, shared by every text model of the engine (BERT, Mamba, causal LMs).

:class:`TokenBatches` is a mixin for a :class:`~hookforge_torch.model.TorchModel` with a
``tokenizer``: each split is tokenized once (cut to ``max_tokens()`` from the side the data's
``truncation_side`` names), batches are padded to their longest text (dynamic padding, on the
side ``padding_side`` names), and with ``data.group_by_length`` the batches of an epoch hold texts
of similar length, seeded by (seed, epoch) like every batch plan, so a resumed run sees the same
batches.

:func:`train_tokenizer` trains a BPE or WordPiece tokenizer with the ``tokenizers`` library on
the training texts only; :func:`load_tokenizer` reads one saved with ``save_pretrained``. Both
import ``transformers``/``tokenizers`` when called: the plugins that call them declare those.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import ConfigError
from hookforge.types import Split

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]",
                  "eos_token": "[EOS]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


class TokenizerTraining(ComponentConfig):
    vocab_size: int = Field(5000, ge=2, description="target vocabulary size, special tokens included")
    kind: Literal["bpe", "bytelevel", "wordpiece"] = Field(
        "bpe", description="subword model: bpe, bytelevel (GPT-2 style byte-level BPE: any text "
                           "decodes back exactly, spaces included; for generating models) or "
                           "wordpiece")
    min_frequency: int = Field(2, ge=1, description="a merge or piece must occur this often")
    lowercase: bool = Field(False, description="lowercase texts before tokenizing")
    split_digits: bool = Field(False, description="one token per digit (numbers are never merged: "
                                                  "what a model doing arithmetic needs)")


class TokenBatches:
    """Token-id batches for a TorchModel (see the module docstring). Subclasses set
    ``tokenizer`` in ``create_module`` or ``build``."""

    tokenizer: Any = None
    padding_side: str = "right"  # causal models pad on the left: the last position is the last token
    predict_batch_size: int = 64
    info: Any
    cached: Any
    run_split: Any

    def max_tokens(self) -> int:
        """Tokens kept per text (``data.max_length`` unless a model reads longer texts in chunks)."""
        return int(self.info.extra.get("max_length", 128))

    def chunk_length(self) -> int | None:
        """A model that reads long texts in chunks of this many tokens gets batches longer than
        one chunk padded to whole chunks (None: no chunks)."""
        return None

    def _encoded(self, split: Split, cache: bool = True) -> dict[str, Any]:
        """Token ids of every text of the split (unpadded), and the targets, computed once."""
        return self.cached(split, cache, self._tokenize)

    def _tokenize(self, split: Split) -> dict[str, Any]:
        import numpy as np

        self.tokenizer.truncation_side = self.info.extra.get("truncation_side", "right")
        ids = self.tokenizer(list(split.X), truncation=True, max_length=self.max_tokens(),
                             padding=False, return_attention_mask=False)["input_ids"]
        encoded: dict[str, Any] = {"ids": ids, "lengths": np.array([len(i) for i in ids])}
        if split.y is not None:
            encoded["y"] = np.asarray(split.y)
        return encoded

    def num_examples(self, split: Split) -> int:
        return len(split.X)

    def predict(self, inputs: Any) -> Any:
        import numpy as np

        from hookforge.errors import DataError

        texts = np.asarray(inputs, dtype=object)
        if len(texts) and not isinstance(texts[0], str):
            raise DataError(f"model '{getattr(self, 'plugin_name', 'text')}' predicts from texts "
                            f"(the data source's text column)")
        return self.run_split(Split(texts, None), batch_size=self.predict_batch_size, cache=False)[1]

    def batch_plan(self, split: Split, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                   drop_last: bool = False) -> list[np.ndarray]:
        import numpy as np

        if not self.info.extra.get("group_by_length"):
            return super().batch_plan(split, batch_size, seed=seed, epoch=epoch,  # type: ignore[misc]
                                      shuffle=shuffle, drop_last=drop_last)
        lengths = self._encoded(split)["lengths"]
        if not shuffle:  # inference: longest first, no randomness (run_split restores the order)
            order = np.argsort(-lengths, kind="stable")
            return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        # Like transformers' LengthGroupedSampler: shuffle, sort within mega-batches of 50 batches
        # by length, cut into batches, then shuffle the batches (all seeded by seed and epoch).
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(lengths))
        mega = batch_size * 50
        batches = []
        for start in range(0, len(order), mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        if drop_last:
            batches = [b for b in batches if len(b) == batch_size]
        return [batches[i] for i in rng.permutation(len(batches))]

    def pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        """(input_ids, attention_mask) int64 tensors, padded on ``padding_side`` to the longest
        row (rounded up to whole chunks when it is longer than one)."""
        import numpy as np
        import torch

        width = max(len(r) for r in rows)
        chunk = self.chunk_length()
        if chunk is not None and width > chunk:
            width = -(-width // chunk) * chunk
        pad = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        left = self.padding_side == "left"
        for k, row in enumerate(rows):  # per-row copy: a few µs each, far below a forward pass
            span = slice(width - len(row), width) if left else slice(0, len(row))
            input_ids[k, span] = row
            mask[k, span] = 1
        return torch.from_numpy(input_ids), torch.from_numpy(mask)

    def collate(self, split: Split, indices: np.ndarray, cache: bool = True) -> dict[str, Any]:
        import numpy as np
        import torch

        encoded = self._encoded(split, cache)
        input_ids, mask = self.pad([encoded["ids"][i] for i in indices])
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "y" in encoded:
            y = encoded["y"][indices]
            batch["y"] = torch.from_numpy(y.astype(np.float32 if self.info.task == "multilabel"
                                                   else np.int64))
        return batch


def check_training(training: TokenizerTraining) -> None:
    """The vocabulary has room for more than the special tokens (a one-line ConfigError if not)."""
    specials = list(SPECIAL_TOKENS.values())
    if training.vocab_size <= len(specials):
        raise ConfigError(f"model.tokenizer.train.vocab_size={training.vocab_size} leaves no room "
                          f"beyond the {len(specials)} special tokens ({', '.join(specials)})")


def train_tokenizer(texts: list[str], training: TokenizerTraining) -> Any:
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (the training split only: val and test
    texts must not shape the vocabulary). BPE is deterministic for the same texts and settings;
    WordPiece is not across processes (its ``##`` pieces get ids in hash-map order, which breaks
    ties between merges: huggingface/tokenizers#1794), so a run saves its tokenizer and resume
    and predict read that copy."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    check_training(training)
    specials = list(SPECIAL_TOKENS.values())
    if training.kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer: Any = trainers.WordPieceTrainer(vocab_size=training.vocab_size,
                                                 special_tokens=specials,
                                                 min_frequency=training.min_frequency,
                                                 show_progress=False)
        tokenizer.decoder = decoders.WordPiece()
    else:
        byte_level = training.kind == "bytelevel"
        tokenizer = Tokenizer(models.BPE(unk_token=None if byte_level else "[UNK]"))
        trainer = trainers.BpeTrainer(
            vocab_size=training.vocab_size, special_tokens=specials,
            min_frequency=training.min_frequency, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_level else [])
        tokenizer.decoder = decoders.ByteLevel() if byte_level else decoders.BPEDecoder()
    steps = [normalizers.NFKC(), *([normalizers.Lowercase()] if training.lowercase else [])]
    tokenizer.normalizer = normalizers.Sequence(steps)
    splitters: list[Any] = [pre_tokenizers.Digits(individual_digits=True)] \
        if training.split_digits else []
    splitters.append(pre_tokenizers.ByteLevel(add_prefix_space=False)
                     if training.kind == "bytelevel" else pre_tokenizers.Whitespace())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    bos, eos = tokenizer.token_to_id("[BOS]"), tokenizer.token_to_id("[EOS]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", bos), ("[EOS]", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=1 << 30,
                                   **SPECIAL_TOKENS)


def load_tokenizer(path: str | Path, what: str = "model.tokenizer") -> Any:
    """A tokenizer directory written by ``save_pretrained`` (or any transformers tokenizer
    directory); a missing or unreadable one is a one-line ConfigError naming ``what``."""
    from transformers import AutoTokenizer

    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"{what}: tokenizer directory {directory} does not exist")
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot load a tokenizer from {directory}: "
                          f"{str(exc).strip().splitlines()[0]}") from None
