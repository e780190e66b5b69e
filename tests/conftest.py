"""Shared helpers for the cross-package tests. The ``hookforge.testing`` fixtures
(``hookforge_cli``, ``tiny_config``, ``hookforge_register``, ``hookforge_tmp``) come from the
pytest11 entry point of the core distribution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookforge.testing import install_fake_distribution

ROOT = Path(__file__).resolve().parents[1]
IRIS_CSV = ROOT / "examples" / "data" / "iris.csv"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"

os.environ.setdefault("HOOKFORGE_PROGRESS", "0")


PLUGINS_DIR = ROOT / "tests" / "plugins"


def fake_distribution(site: Path, name: str, entry_points: str,
                      modules: dict[str, str] | None = None) -> Path:
    """A minimal installed distribution (dist-info + modules) in ``site``, to put on PYTHONPATH."""
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in entry_points.splitlines():
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            key, _, value = line.partition("=")
            groups.setdefault(group, {})[key.strip()] = value.strip()
    return install_fake_distribution(site, name, groups, modules)


@pytest.fixture
def test_plugins_env(tmp_path):
    """Environment that makes the modules in tests/plugins/ installed plugins for subprocesses."""
    site = fake_distribution(
        tmp_path / "test-plugins-site", "hookforge-test-plugins",
        "[hookforge.models]\ncrashing = faulty:Crashing\ninterrupting = faulty:Interrupting\n"
        "majority = majority:Majority\ndisk_full = faulty:DiskFull\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), str(PLUGINS_DIR)])}


@pytest.fixture
def quickstart(tiny_config):
    """A quickstart-like config dict: the example centroid model on the bundled iris CSV."""
    return tiny_config(data={"name": "csv", "path": str(IRIS_CSV), "target": "species"},
                       model={"name": "centroid"})


@pytest.fixture
def two_runs(hookforge_cli, hookforge_tmp):
    """Two finished quickstart runs, ``a`` and ``b``, in the test's working directory."""
    for name, extra in (("a", "model.standardize=true"), ("b", "model.standardize=false")):
        result = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", extra,
                               "--run-dir", name)
        assert result.returncode == 0, result.stderr
    return hookforge_tmp / "a", hookforge_tmp / "b"
