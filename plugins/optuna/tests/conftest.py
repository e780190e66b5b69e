"""Fixtures of the hookforge-optuna tests: cheap trials (the example centroid model on wine)."""

from __future__ import annotations

import pytest
import yaml


@pytest.fixture
def plan(hookforge_tmp):
    """Write a search config with the given searcher section; returns its path."""
    def make(searcher: dict, **sections) -> str:
        config = {"run": {"name": "hpo", "seed": 7, "output_dir": "outputs", "progress": False},
                  "data": {"name": "sklearn", "dataset": "wine"},
                  "model": {"name": "centroid"},
                  "searcher": {"name": "optuna", "metric": "val/accuracy", **searcher}}
        config.update(sections)
        path = hookforge_tmp / "plan.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)
    return make


@pytest.fixture
def slow_env(hookforge_installed):
    """Makes `--model slow` (fits in a known time) available to worker subprocesses."""
    from pathlib import Path

    return hookforge_installed({"hookforge.models": {"slow": "slow_model:SlowCentroid"}},
                               [Path(__file__).parent])
