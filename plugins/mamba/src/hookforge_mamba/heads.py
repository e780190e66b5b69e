"""Document classification on a Mamba backbone: transformers has no sequence-classification head
for Mamba, so this module pools the backbone's last hidden states (mean over real tokens, the last
token, or attention pooling with a learned scorer) and applies a linear head.

Batches are padded on the left. For a recurrent model that is exact: padded positions have their
inputs zeroed before the mixer (transformers' ``apply_mask_to_padding_states``), so the state is
still zero when the first real token arrives, and the last position is always the last token.

Chunked reading (``chunk_length``): a document longer than one chunk is read chunk after chunk
with the recurrent and convolution states carried in a ``DynamicCache`` (exact for Mamba2, whose
scan takes an initial state). The earlier chunks run without gradients (truncated
backpropagation through time), so memory stays that of one chunk however long the document; the
pooled representation is that of the last chunk, which has read the whole document.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Pooling(nn.Module):
    def __init__(self, kind: str, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.scorer = nn.Linear(hidden_size, 1) if kind == "attention" else None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "last":  # left padding: the last position is every row's last token
            return hidden[:, -1]
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        if self.scorer is not None:
            scores = self.scorer(hidden).float().masked_fill(weights == 0, float("-inf"))
            weights = torch.softmax(scores, dim=1).to(hidden.dtype)
            return (hidden * weights).sum(1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class MambaClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, pooling: str, num_outputs: int, dropout: float,
                 chunk_length: int | None = None) -> None:
        super().__init__()
        hidden = backbone.config.hidden_size
        self.backbone = backbone
        self.pool = Pooling(pooling, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_outputs)
        self.chunk_length = chunk_length

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = self.chunk_length
        if length is None or input_ids.shape[1] <= length:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(self.dropout(self.pool(hidden, attention_mask)))
        hidden, mask = self._read_in_chunks(input_ids, attention_mask, length)
        return self.head(self.dropout(self.pool(hidden, mask)))

    def _read_in_chunks(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        length: int) -> tuple[torch.Tensor, torch.Tensor]:
        from transformers import DynamicCache

        cache: Any = DynamicCache(config=self.backbone.config)
        starts = list(range(0, input_ids.shape[1], length))  # collate pads to a multiple of length
        with torch.no_grad():
            for start in starts[:-1]:
                self.backbone(input_ids=input_ids[:, start:start + length],
                              attention_mask=attention_mask[:, start:start + length],
                              cache=cache, use_cache=True)
        last = slice(starts[-1], starts[-1] + length)
        out = self.backbone(input_ids=input_ids[:, last], attention_mask=attention_mask[:, last],
                            cache=cache, use_cache=True)
        return out.last_hidden_state, attention_mask[:, last]
