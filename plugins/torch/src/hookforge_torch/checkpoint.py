"""Checkpoint files that load without executing code: weights in safetensors, the training state
(optimizer, scheduler, scaler, RNGs, progress) in a torch file read with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hookforge.errors import CheckpointError

WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"


def save_weights(module: torch.nn.Module, directory: Path, extra: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    from hookforge_torch.engine import unwrap

    current = unwrap(module).state_dict()
    # tied weights (an LM head = its embeddings) are written once, under their first name
    state = {names[0]: current[names[0]].detach().contiguous().cpu()
             for names in _tie_groups(current).values()}
    save_file(state, str(directory / WEIGHTS), metadata=extra or {})


def _tie_groups(state: dict[str, torch.Tensor]) -> dict[tuple[Any, ...], list[str]]:
    """State-dict names grouped by the memory they share (one name per group when nothing is
    tied), in state-dict order."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
               tuple(tensor.shape)) if tensor.numel() else (name,)
        groups.setdefault(key, []).append(name)
    return groups


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict of CPU tensors, with clear errors for a missing or torn file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path.parent} has no {path.name}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {exc}") from None


def load_weights(module: torch.nn.Module, directory: Path) -> None:
    """Load weights strictly, naming the first parameter that is missing, unexpected or of
    another shape (a checkpoint from a different model)."""
    path = directory / WEIGHTS
    state = read_tensors(path)
    expected = module.state_dict()
    tied = {name for names in _tie_groups(expected).values() if len(names) > 1
            and any(n in state for n in names) for name in names if name not in state}
    for name, tensor in expected.items():
        if name in tied:  # restored with the weight it is tied to
            continue
        if name not in state:
            raise CheckpointError(f"{path} does not fit this model: parameter '{name}' is missing "
                                  f"(was it saved by another model or config?)")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path} does not fit this model: parameter '{name}' has shape "
                                  f"{tuple(state[name].shape)} in the checkpoint, "
                                  f"{tuple(tensor.shape)} in the model")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path} does not fit this model: unexpected parameter "
                              f"'{unexpected[0]}'")
    module.load_state_dict(state, strict=not tied)


def save_training_state(state: dict[str, Any], directory: Path) -> None:
    torch.save(state, directory / TRAINING_STATE)


def load_training_state(directory: Path) -> dict[str, Any]:
    path = directory / TRAINING_STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no {TRAINING_STATE}: it cannot be resumed") from None
    except Exception as exc:  # torch raises several types for a torn or foreign file
        raise CheckpointError(f"{path} is truncated or corrupt: {exc}") from None
