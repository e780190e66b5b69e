"""What every plugin built on transformers needs before its first model: no hub, no noise."""

from __future__ import annotations

from typing import Any


def quiet_transformers() -> None:
    """transformers warns that a fresh classification head is untrained: that is the point."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()  # "Loading weights" bars on every trial of a search


def enable_checkpointing(module: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant, which works with frozen
    inputs), under whichever name this transformers release gives it."""
    options = {"use_reentrant": False}
    if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x
        module.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
