"""What every plugin built on transformers needs before its first model: no hub, no noise."""

from __future__ import annotations


def quiet_transformers() -> None:
    """transformers warns that a fresh classification head is untrained: that is the point."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()  # "Loading weights" bars on every trial of a search
