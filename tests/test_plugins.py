"""Plugin discovery: broken and disabled plugins, third-party packages installed with pip, the
in-process registration fixture, and loading only what was asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import IRIS_CSV, QUICKSTART, ROOT, fake_distribution

from hookforge import registry
from hookforge.errors import PluginError


@pytest.fixture
def broken_site(tmp_path):
    return fake_distribution(
        tmp_path / "site", "hookforge-broken",
        "[hookforge.models]\nbroken = broken_model:Broken\n"
        "[hookforge.plugins]\nbroken_hooks = broken_hooks\n",
        {"broken_model": "import a_dependency_that_is_not_installed\n",
         "broken_hooks": "raise RuntimeError('boom at import')\n"})


def test_broken_plugin_is_listed_and_others_keep_working(hookforge_cli, broken_site):
    env = {"PYTHONPATH": str(broken_site)}
    listing = hookforge_cli("plugins", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(listing.stdout)}
    assert rows[("model", "broken")]["status"] == "broken"
    assert "a_dependency_that_is_not_installed" in rows[("model", "broken")]["error"]
    assert rows[("model", "centroid")]["status"] == "ok"
    table = hookforge_cli("plugins", env=env)
    assert "broken: ModuleNotFoundError" in table.stdout

    # Other plugins still train; the broken hook-only plugin warns and is skipped.
    ok = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--run-dir", "r", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "hook-only plugin 'broken_hooks' skipped" in ok.stderr

    selected = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--model",
                             "broken", env=env)
    assert selected.returncode == 2
    assert "model 'broken' is broken" in selected.stderr
    assert "a_dependency_that_is_not_installed" in selected.stderr
    assert "Traceback" not in selected.stderr


def test_disabled_plugins(hookforge_cli):
    env = {"HOOKFORGE_DISABLE_PLUGINS": "centroid,hookforge-example"}
    listing = json.loads(hookforge_cli("plugins", "--json", env=env).stdout)
    status = {(r["kind"], r["name"]): r["status"] for r in listing}
    assert status[("model", "centroid")] == "disabled"
    assert status[("tracker", "jsonl")] == "disabled"  # disabled by distribution name
    result = hookforge_cli("train", "-c", QUICKSTART, env=env)
    assert result.returncode == 2 and "disabled by HOOKFORGE_DISABLE_PLUGINS" in result.stderr


def test_selecting_loads_only_that_component():
    code = ("import sys\nfrom hookforge import registry\n"
            "registry.load('model', 'centroid')\n"
            "print(','.join(m for m in sys.modules if m.startswith('hookforge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().split(","))
    assert "hookforge_example.centroid" in loaded
    assert "hookforge_example.jsonl_tracker" not in loaded
    assert "hookforge.builtins.data.tabular" not in loaded


def test_listing_names_reads_metadata_only(broken_site, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    registry.refresh()
    try:
        assert "broken" in registry.names("model")  # listed without importing the broken module
        assert "broken_model" not in sys.modules
        with pytest.raises(PluginError, match="is broken"):
            registry.load("model", "broken")
    finally:
        registry.refresh()


def test_third_party_package_installed_with_pip(hookforge_cli, tmp_path):
    """A plugin package outside the repo, pip-installed, selected by name on the command line."""
    package = tmp_path / "hookforge-majority"
    (package / "src" / "hookforge_majority").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "hookforge-majority"\nversion = "1.2.3"\ndependencies = []\n'
        '[project.entry-points."hookforge.models"]\n'
        'majority = "hookforge_majority:Majority"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n')
    (package / "src" / "hookforge_majority" / "__init__.py").write_text(
        (ROOT / "tests" / "plugins" / "majority.py").read_text())
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(package)], check=True)
    env = {"PYTHONPATH": str(site)}
    listing = json.loads(hookforge_cli("plugins", "--json", env=env).stdout)
    row = next(r for r in listing if r["name"] == "majority")
    assert (row["kind"], row["distribution"], row["version"], row["status"]) == \
        ("model", "hookforge-majority", "1.2.3", "ok")
    result = hookforge_cli("train", "--data", "sklearn", "data.dataset=wine", "--model", "majority",
                           "--run-dir", "r", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["versions"]["hookforge-majority"] == "1.2.3"
    assert info["components"]["model"] == "majority"


def test_register_fixture_makes_a_class_selectable(hookforge_register, tiny_config):
    import importlib.util

    import hookforge

    spec = importlib.util.spec_from_file_location("majority", ROOT / "tests" / "plugins" / "majority.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hookforge_register("model", "majority", module.Majority)
    result = hookforge.train(tiny_config(model={"name": "majority"}))
    assert result.status == "finished"
    assert 0 < result.metric("test/accuracy") < 0.5  # majority class of iris: one third


def test_examples_thirdparty_builds_installs_and_runs_by_name(hookforge_cli, tmp_path):
    """The example plugin package, pip-installed (not editable) into its own directory."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(ROOT / "examples" / "thirdparty")], check=True)
    env = {"PYTHONPATH": str(site)}
    code = "import hookforge_example; print(hookforge_example.__file__)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, **env}, check=True)
    assert where.stdout.startswith(str(site))  # the installed copy, not the source tree
    result = hookforge_cli("train", "--data", "sklearn", "data.dataset=iris", "--model", "centroid",
                           "--tracker", "jsonl", "--run-dir", "r", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "tracker.jsonl").exists()
