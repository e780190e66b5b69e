"""Fixtures of the hookforge-torch tests."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture
def killer_env(hookforge_installed):
    """Environment in which every CLI run loads the Killer hook-only plugin."""
    return hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}}, [HERE])


@pytest.fixture
def iris_mlp(tiny_config):
    """A small, fast MLP config on iris (7 batches per epoch)."""
    def make(**loop):
        base = {"name": "supervised", "epochs": 4, "batch_size": 16,
                "optimizer": {"name": "adamw", "lr": 0.01}, "device": "cpu"}
        base.update(loop)
        return tiny_config(model={"name": "mlp", "hidden": [32], "dropout": 0.2}, loop=base,
                           run={"log_every_n_steps": 1})
    return make
