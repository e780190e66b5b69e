"""LoRA adapters through peft, for any transformers model of the engine: the settings, wrapping a
network (its ``target_modules`` checked against the Linear layers it has), saving and restoring
the adapter alone (safetensors), and merging it back into a plain transformers directory.

hookforge-bert classifies with it; hookforge-lm fine-tunes causal language models with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

ADAPTER_FILE = "adapter.safetensors"


class LoraSettings(ComponentConfig):
    enabled: bool = Field(False, description="train LoRA adapters (and the head) instead of all weights")
    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: int = Field(16, ge=1, description="scaling numerator (lora_alpha)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"],
                                      description="names of the Linear layers that get adapters")


def linear_layer_names(module: torch.nn.Module) -> list[str]:
    """The short names of the module's Linear layers (q_proj, query, ...): what target_modules
    may name. transformers' GPT-2 uses its own Conv1D for the same job, so that counts too."""
    import torch

    kinds: tuple[type, ...] = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D

        kinds += (Conv1D,)
    except ImportError:  # pragma: no cover
        pass
    return sorted({name.rsplit(".", 1)[-1] for name, m in module.named_modules()
                   if isinstance(m, kinds) and name})


def with_lora(module: torch.nn.Module, lora: LoraSettings, task_type: str,
              where: str = "model.lora") -> torch.nn.Module:
    """``module`` wrapped by peft with adapters on ``lora.target_modules``; a name that matches no
    Linear layer is a one-line ConfigError listing the ones that exist."""
    import warnings

    from peft import LoraConfig, TaskType, get_peft_model

    linear = linear_layer_names(module)
    missing = [t for t in lora.target_modules if t not in linear]
    if missing:
        raise ConfigError(f"{where}.target_modules: '{missing[0]}' is not a Linear layer of "
                          f"this model; it has: {', '.join(linear)}")
    config = LoraConfig(task_type=getattr(TaskType, task_type), r=lora.r, lora_alpha=lora.alpha,
                        lora_dropout=lora.dropout, target_modules=list(lora.target_modules))
    with warnings.catch_warnings():  # peft calls an API transformers marks as deprecated
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(module, config)


def save_adapter(net: torch.nn.Module, path: Path, model: str) -> None:
    """The adapter's weights (and any module peft trains beside it, e.g. a classifier head)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = get_peft_model_state_dict(net)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path),
              metadata={"model": model, "lora": "adapter"})


def restore_adapter(net: torch.nn.Module, path: Path) -> None:
    from peft import set_peft_model_state_dict

    from hookforge_torch.checkpoint import read_tensors

    result = set_peft_model_state_dict(net, read_tensors(path))
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise CheckpointError(f"{path} does not fit this model: unexpected '{unexpected[0]}'")


def export_merged(net: torch.nn.Module, tokenizer: Any, target: Path, lora: bool) -> Path:
    """The network with any LoRA adapter merged into its weights, saved as a plain transformers
    directory (safetensors, config, tokenizer) that the matching AutoModel class loads."""
    import copy

    merged = copy.deepcopy(net)
    if lora:
        merged = merged.merge_and_unload()
    target.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target
