"""A pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures:

* ``hookforge_register(kind, name, cls)``: make a component selectable by name for one test,
  without packaging it.
* ``hookforge_tmp``: run the test inside a fresh temporary directory.
* ``tiny_config(**sections)``: a small, fast config dict (iris, progress off, outputs in the temp
  directory) with the given sections merged in.
* ``hookforge_cli(*args)``: run the real ``hookforge`` command in a subprocess; returns the
  ``CompletedProcess`` (``returncode``, ``stdout``, ``stderr``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def hookforge_register() -> Iterator[Callable[[str, str, type], type]]:
    from hookforge import registry

    with contextlib.ExitStack() as stack:

        def register(kind: str, name: str, cls: type) -> type:
            stack.enter_context(registry.temporary(kind, name, cls))
            return cls

        yield register


@pytest.fixture
def hookforge_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "name" not in value:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture
def tiny_config(hookforge_tmp: Path) -> Callable[..., dict[str, Any]]:
    def make(**sections: Any) -> dict[str, Any]:
        base = {"run": {"name": "test", "seed": 0, "output_dir": str(hookforge_tmp / "outputs"),
                        "progress": False},
                "data": {"name": "sklearn", "dataset": "iris"}}
        return _merge(base, sections)

    return make


@pytest.fixture
def hookforge_cli(hookforge_tmp: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "HOOKFORGE_PROGRESS": "0", **(env or {})}
        return subprocess.run([sys.executable, "-m", "hookforge", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=full_env,
                              cwd=cwd or hookforge_tmp)

    return run
