"""How a plugin package tests itself with the fixtures of `hookforge.testing`."""

from __future__ import annotations

import json

import hookforge


def test_centroid_trains_and_reloads(tiny_config):
    result = hookforge.train(tiny_config(model={"name": "centroid"}))
    assert result.status == "finished"
    assert result.metric("test/accuracy") > 0.7  # 23 test rows; nearest centroid is a simple model
    run = hookforge.Run.open(result.run_dir)
    assert run.evaluate(["test"])["test"]["accuracy"] == result.metric("test/accuracy")


def test_manhattan_distance_option(tiny_config):
    result = hookforge.train(tiny_config(model={"name": "centroid", "metric": "manhattan"}))
    assert result.metric("val/accuracy") > 0.7


def test_jsonl_tracker_records_every_metric(tiny_config):
    result = hookforge.train(tiny_config(model={"name": "centroid"}, trackers=["jsonl"]))
    lines = [json.loads(line) for line in (result.run_dir / "tracker.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "start" and lines[-1] == {"type": "end", "status": "finished"}
    assert any(line["type"] == "metric" and line["key"] == "test/accuracy" for line in lines)


def test_cli_selects_the_plugin_by_name(hookforge_cli):
    result = hookforge_cli("train", "--data", "sklearn", "data.dataset=wine", "--model", "centroid",
                           "--tracker", "jsonl", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    assert "test (n=" in result.stdout and "accuracy=" in result.stdout
