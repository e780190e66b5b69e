"""Fixtures of the hookforge-bert tests: tiny random BERTs (MiniLM's tokenizer) on the generated
texts of examples/data, and nothing fetched from any hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "examples" / "data"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 128}

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def text_config(tiny_config):
    """A config for the text source and a tiny BERT; keyword overrides per section."""
    def make(data=None, model=None, loop=None, **sections):
        return tiny_config(
            data={"name": "text", "path": str(DATA / "evidence.csv"), "max_length": 48,
                  "split": {"val": 0.2, "test": 0.2, "stratify": True}, **(data or {})},
            model={"name": "bert", "pretrained": None, "config": TINY, **(model or {})},
            loop={"name": "supervised", "epochs": 4, "batch_size": 16, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 3e-3}, "monitor": "val/f1_macro",
                  **(loop or {})},
            run={"log_every_n_steps": 5}, **sections)
    return make
