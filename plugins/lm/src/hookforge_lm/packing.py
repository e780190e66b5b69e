"""Packing: a batch's examples laid into as few rows of ``max_length`` tokens as they fit in
(first fit, longest first), so a batch of short completions wastes little on padding.

Each example keeps its own positions (they restart at 0) and attends only to itself: the
attention mask is 4-D, causal within each example and closed between them, which transformers'
attention accepts as it is. Per-token example numbers let the model add each token's loss to
its example, so the loss and perplexity are exactly those of the unpacked batch.
"""

from __future__ import annotations

from typing import Any


def first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Example indices per row: longest first, each into the first row with room."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows


def pack(rows: list[list[int]], prompt_lengths: list[int], capacity: int, pad: int) -> dict[str, Any]:
    """The batch of packed rows: input_ids, position_ids, a 4-D boolean attention mask, the
    labels (prompts and padding -100) and each token's example (-1 for padding)."""
    import torch

    layout = first_fit([len(r) for r in rows], capacity)
    width = max(sum(len(rows[i]) for i in row) for row in layout)
    n = len(layout)
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    example = torch.full((n, width), -1, dtype=torch.long)
    for r, members in enumerate(layout):
        at = 0
        for i in members:
            tokens = torch.tensor(rows[i], dtype=torch.long)
            span = slice(at, at + len(tokens))
            input_ids[r, span] = tokens
            labels[r, at + prompt_lengths[i]:at + len(tokens)] = tokens[prompt_lengths[i]:]
            positions[r, span] = torch.arange(len(tokens))
            example[r, span] = i
            at += len(tokens)
    same = (example[:, :, None] == example[:, None, :]) & (example[:, :, None] >= 0)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = (same & causal)[:, None]
    # a padding position attends to itself only, so no row of the mask is empty
    pad_rows = (example < 0)
    eye = torch.eye(width, dtype=torch.bool)[None, None]
    mask = mask | (pad_rows[:, None, :, None] & eye)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions,
            "y": labels, "example": example, "n_examples": len(rows)}
