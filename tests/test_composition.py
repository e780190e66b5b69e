"""Sub-component kinds and config groups, as a third-party package uses them: a package declares
a kind (``widget``), registers parts of it, and a model of its own takes one by name; config
groups and defaults lists compose prepared files. Nothing in hookforge knows about widgets."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
import yaml
from conftest import IRIS_CSV

from hookforge.record import RunRecord
from hookforge.testing import install_fake_distribution

WIDGETS = textwrap.dedent('''
    """A third-party package: the widget kind and a model that uses a widget."""
    import json
    from typing import Literal

    import numpy as np
    from pydantic import Field

    from hookforge import ComponentConfig, Model, Sub, sub_field
    from hookforge.types import Predictions


    class Round:
        """A round widget: leans towards one class."""

        class Config(ComponentConfig):
            favourite: int = Field(0, ge=0, description="the class it favours")
            finish: Literal["matte", "gloss"] = "matte"

        def __init__(self, config):
            self.config = config

        def bias(self, n_classes):
            out = np.zeros(n_classes)
            out[self.config.favourite % n_classes] = 1.0
            return out


    class Square(Round):
        """A square widget: no preference."""

        class Config(ComponentConfig):
            sides: int = Field(4, ge=3)

        def bias(self, n_classes):
            return np.full(n_classes, 1.0 / n_classes)


    class WidgetModel(Model):
        """Predicts from its widget's bias."""

        class Config(ComponentConfig):
            widget: Sub("widget") = sub_field("round", "the widget that decides")

        def build(self, run, dataset):
            self.classes = dataset.info.classes
            self.widget = self.config.widget.create()

        def fit(self, run, dataset):
            pass

        def predict(self, inputs):
            scores = np.tile(self.widget.bias(len(self.classes)), (len(inputs), 1))
            return Predictions(scores.argmax(axis=1), scores, classes=self.classes)

        def save(self, directory):
            (directory / "widget.json").write_text(json.dumps(self.config.widget.to_dict()))

        def load(self, directory, info):
            self.classes = info.classes
            self.widget = self.config.widget.create()
''')


@pytest.fixture
def widgets_env(tmp_path):
    site = install_fake_distribution(
        tmp_path / "site", "hookforge-widgets",
        {"hookforge.kinds": {"widget": "hookforge.widgets"},
         "hookforge.widgets": {"round": "widgets:Round", "square": "widgets:Square",
                               "cracked": "widgets_missing:Cracked"},
         "hookforge.models": {"widget_model": "widgets:WidgetModel"}},
        {"widgets": WIDGETS})
    return {"PYTHONPATH": str(site)}


def test_a_declared_kind_is_listed_shown_and_checked_like_the_others(hookforge_cli, widgets_env):
    listed = json.loads(hookforge_cli("plugins", "--json", env=widgets_env).stdout)
    rows = {(r["kind"], r["name"]): r for r in listed}
    assert rows[("widget", "round")]["status"] == "ok"
    assert rows[("widget", "cracked")]["status"] == "broken"
    assert "widgets_missing" in rows[("widget", "cracked")]["error"]
    shown = hookforge_cli("plugins", "show", "widget", "round", env=widgets_env)
    assert shown.returncode == 0, shown.stderr
    assert "finish: one of matte, gloss" in shown.stdout  # Literal values are listed
    model = hookforge_cli("plugins", "show", "model", "widget_model", env=widgets_env)
    assert "widget: widget (cracked, round, square)" in model.stdout
    plural = hookforge_cli("plugins", "show", "widgets", "square", env=widgets_env)
    assert plural.returncode == 0 and "sides" in plural.stdout
    disabled = hookforge_cli("plugins", "--json", env={**widgets_env,
                                                      "HOOKFORGE_DISABLE_PLUGINS": "widget:square"})
    assert {(r["kind"], r["name"]): r["status"] for r in json.loads(disabled.stdout)}[
        ("widget", "square")] == "disabled"


def test_a_part_is_chosen_by_name_switched_with_reset_and_validated(hookforge_cli, hookforge_tmp,
                                                                    widgets_env):
    base = ("train", "--data", "csv", f"data.path={IRIS_CSV}", "data.target=species",
            "--model", "widget_model")
    done = hookforge_cli(*base, "model.widget.favourite=2", "--run-dir", "round", env=widgets_env)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((hookforge_tmp / "round" / "config.yaml").read_text())
    assert config["model"]["widget"] == {"name": "round", "favourite": 2, "finish": "matte"}
    # switching the part drops the old part's options (favourite is not a square's)
    switched = hookforge_cli("train", "-c", hookforge_tmp / "round" / "config.yaml",
                             "model.widget=square", "model.widget.sides=5", "--run-dir", "square",
                             env=widgets_env)
    assert switched.returncode == 0, switched.stderr
    config = yaml.safe_load((hookforge_tmp / "square" / "config.yaml").read_text())
    assert config["model"]["widget"] == {"name": "square", "sides": 5}
    predicted = hookforge_cli("evaluate", "square", env=widgets_env)
    assert predicted.returncode == 0, predicted.stderr
    cases = [("model.widget=rond", "unknown widget 'rond' (did you mean 'round'?)"),
             ("model.widget.sidez=5", "unknown key 'sidez'"),
             ("model.widget=cracked", "widget 'cracked' is broken"),
             ("model.widget.finish=shiny", "model.widget")]
    for override, message in cases:
        bad = hookforge_cli(*base, override, env=widgets_env)
        assert bad.returncode == 2 and message in bad.stderr, (override, bad.stderr)
        assert "Traceback" not in bad.stderr
    off = hookforge_cli(*base, "model.widget=square",
                        env={**widgets_env, "HOOKFORGE_DISABLE_PLUGINS": "square"})
    assert off.returncode == 2 and "disabled by HOOKFORGE_DISABLE_PLUGINS" in off.stderr


def test_config_groups_and_defaults_lists(hookforge_cli, hookforge_tmp, widgets_env, monkeypatch):
    lab = hookforge_tmp / "lab"
    (lab / "data").mkdir(parents=True)
    (lab / "model" / "widget").mkdir(parents=True)
    (lab / "phase1" / "experiment").mkdir(parents=True)
    (lab / "iris.csv").write_bytes(IRIS_CSV.read_bytes())
    (lab / "data" / "iris.yaml").write_text("name: csv\npath: ../iris.csv\ntarget: species\n")
    (lab / "model" / "widgets.yaml").write_text("name: widget_model\nwidget: {name: round}\n")
    (lab / "model" / "widget" / "square.yaml").write_text("name: square\nsides: 6\n")
    (lab / "phase1" / "experiment" / "squares.yaml").write_text(
        "# @package _global_\nrun: {name: squares}\nmodel: {widget: {name: square, sides: 8}}\n")
    (lab / "main.yaml").write_text(
        "defaults:\n  - data: iris\n  - model: widgets\n  - _self_\nrun: {name: lab, seed: 3}\n")
    done = hookforge_cli("train", "-c", lab / "main.yaml", "--run-dir", "a", env=widgets_env)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((hookforge_tmp / "a" / "config.yaml").read_text())
    assert config["data"]["path"] == str(lab / "iris.csv")  # relative to the file that set it
    assert config["model"]["widget"]["name"] == "round" and config["run"]["seed"] == 3
    # a group on the command line, nested group, a global package, and a named config
    done = hookforge_cli("train", "-c", lab / "main.yaml", "model/widget=square", "--run-dir", "b",
                         env=widgets_env)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((hookforge_tmp / "b" / "config.yaml").read_text())["model"]["widget"] == \
        {"name": "square", "sides": 6}
    env = {**widgets_env, "HOOKFORGE_CONFIG_PATH": str(lab)}
    done = hookforge_cli("train", "-c", lab / "main.yaml", "phase1/experiment=squares",
                         "--run-dir", "c", env=env)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((hookforge_tmp / "c" / "config.yaml").read_text())
    assert config["run"]["name"] == "squares" and config["model"]["widget"]["sides"] == 8
    named = hookforge_cli("train", "-c", "main", "--run-dir", "d", env=env)  # found on the path
    assert named.returncode == 0, named.stderr
    # a group that does not exist is still a plugin switch; a bad option is named
    plugin = hookforge_cli("train", "-c", lab / "main.yaml", "model=centroid", "--run-dir", "e",
                           env=widgets_env)
    assert plugin.returncode == 0, plugin.stderr
    assert RunRecord.open(hookforge_tmp / "e").info()["components"]["model"] == "centroid"
    bad = hookforge_cli("train", "-c", lab / "main.yaml", "model/widget=sqare", env=widgets_env)
    assert bad.returncode == 2
    assert "config group 'model/widget' has no option 'sqare' (did you mean 'square'?)" in bad.stderr
    (lab / "loop.yaml").write_text("defaults: [loop]\n")
    looped = hookforge_cli("train", "-c", lab / "loop.yaml", env=widgets_env)
    assert looped.returncode == 2 and "include each other" in looped.stderr


def test_sub_components_from_python(tmp_path, monkeypatch):
    site = install_fake_distribution(
        tmp_path / "site", "hookforge-widgets",
        {"hookforge.kinds": {"widget": "hookforge.widgets"},
         "hookforge.widgets": {"round": "widgets:Round", "square": "widgets:Square"},
         "hookforge.models": {"widget_model": "widgets:WidgetModel"}},
        {"widgets": WIDGETS})
    monkeypatch.syspath_prepend(str(site))
    from hookforge import registry

    registry.refresh()
    try:
        import hookforge

        result = hookforge.train({"data": {"name": "csv", "path": str(IRIS_CSV), "target": "species"},
                                  "model": {"name": "widget_model", "widget": "square"},
                                  "run": {"output_dir": str(tmp_path / "out")}})
        assert result.status == "finished"
        spec = hookforge.Run.open(result.run_dir).config.model.options.widget
        assert spec.kind == "widget" and spec.name == "square" and spec.sides == 4
        assert "widget" in registry.sub_kinds()
    finally:
        for module in [m for m in list(__import__("sys").modules) if m == "widgets"]:
            del __import__("sys").modules[module]
        os.environ.pop("HOOKFORGE_DISABLE_PLUGINS", None)
        registry.refresh()


def test_the_data_source_example_of_the_authors_reference_runs(hookforge_register, tiny_config,
                                                                tmp_path, monkeypatch):
    """docs/writing-plugins.md's data source, as written there, with the shared split helper."""
    import importlib
    import re

    from conftest import ROOT

    import hookforge

    text = (ROOT / "docs" / "writing-plugins.md").read_text()
    source = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S)
                  if "class Spirals" in block)
    (tmp_path / "spirals_example.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    hookforge_register("data", "spirals", importlib.import_module("spirals_example").Spirals)
    config = tiny_config(data={"name": "spirals", "n": 200}, model={"name": "centroid"})
    first, second = hookforge.train(config), hookforge.train(config)
    splits = json.loads((first.run_dir / "splits.json").read_text())
    assert sum(splits["sizes"].values()) == 200 and splits["sizes"]["test"] == 30
    assert splits == json.loads((second.run_dir / "splits.json").read_text())  # seeded
    resumed = hookforge.Run.open(first.run_dir).evaluate(["test"])
    assert resumed["test"]["n_samples"] == 30
