"""Every component a plugin registers is documented: its entry-point name appears, in backquotes,
in the docs pages or the plugin's README (datasette-style meta-test)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def registered() -> list[tuple[str, str, str]]:
    found = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        for group, names in project.get("entry-points", {}).items():
            if group in ("hookforge.kinds", "hookforge.plugins"):
                continue
            found += [(pyproject.parent.name, group, name) for name in names]
    return found


@pytest.mark.parametrize("plugin, group, name", registered())
def test_every_registered_component_is_documented(plugin, group, name):
    readme = (ROOT / "plugins" / plugin / "README.md").read_text()
    assert f"`{name}`" in DOCS or f"`{name}`" in readme, (
        f"{group} '{name}' of plugins/{plugin} is in no docs page nor its README")
