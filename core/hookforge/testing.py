"""A pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures:

* ``hookforge_register(kind, name, cls)``: make a component selectable by name for one test,
  without packaging it.
* ``hookforge_tmp``: run the test inside a fresh temporary directory.
* ``tiny_config(**sections)``: a small, fast config dict (iris, progress off, outputs in the temp
  directory) with the given sections merged in.
* ``hookforge_cli(*args)``: run the real ``hookforge`` command in a subprocess; returns the
  ``CompletedProcess`` (``returncode``, ``stdout``, ``stderr``).
* ``hookforge_installed(entry_points, paths)``: make modules look installed as plugins to a
  subprocess (a dist-info with those entry points); returns the environment to pass to
  ``hookforge_cli(..., env=...)``.

Helpers: :class:`PredictionRecorder`, a hook-only plugin that records every prediction a run asks
for (``Run.from_config(config, plugins=[recorder])``).
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

from hookforge.markers import hookimpl


class PredictionRecorder:
    """Records the number of rows of every ``hookforge_predict`` call of a run it is passed to,
    in ``sizes``: what a run predicts, and how often."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    @hookimpl(wrapper=True)
    def hookforge_predict(self, run: Any, model: Any, inputs: Any) -> Any:
        self.sizes.append(len(inputs))
        return (yield)


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


def install_fake_distribution(site: Path, name: str, entry_points: dict[str, dict[str, str]],
                              modules: dict[str, str] | None = None, version: str = "0.1") -> Path:
    """Write a minimal installed distribution into ``site``: METADATA, entry_points.txt (group ->
    {name: "module:attr"}) and optional module sources. Put ``site`` on PYTHONPATH to use it."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items())
                   for group, items in entry_points.items())
    (info / "entry_points.txt").write_text(text)
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return site


@pytest.fixture
def hookforge_installed(tmp_path: Path) -> Callable[..., dict[str, str]]:
    def install(entry_points: dict[str, dict[str, str]], paths: list[str | Path] = (),
                name: str = "hookforge-test-plugins") -> dict[str, str]:
        site = install_fake_distribution(tmp_path / f"site-{name}", name, entry_points)
        return {"PYTHONPATH": os.pathsep.join([str(site), *map(str, paths)])}

    return install


@pytest.fixture
def hookforge_cli(hookforge_tmp: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "HOOKFORGE_PROGRESS": "0", **(env or {})}
        return subprocess.run([sys.executable, "-m", "hookforge", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=full_env,
                              cwd=cwd or hookforge_tmp)

    return run
