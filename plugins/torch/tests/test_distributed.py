"""Distributed data parallel on CPU (gloo): `torchrun --nproc-per-node 2 -m hookforge train`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from hookforge.record import RunRecord

CONFIG = {
    "run": {"name": "ddp", "seed": 3, "output_dir": "outputs", "log_every_n_steps": 2},
    "data": {"name": "sklearn", "dataset": "digits"},
    "model": {"name": "mlp", "hidden": [64], "dropout": 0.0},
    "loop": {"name": "supervised", "epochs": 3, "batch_size": 32, "drop_last": True,
             "device": "cpu", "optimizer": {"lr": 0.003}},
}
TIMING = ("samples_per_s", "epoch_time_s", "peak_memory_mb")


def torchrun(*args, cwd, env=None, timeout=300):
    import os

    full_env = {**os.environ, "HOOKFORGE_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "hookforge", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def _metrics(run_dir):
    return [(r["step"], r["split"], r["name"], r["value"])
            for r in RunRecord.open(run_dir).read_metrics() if r["name"] not in TIMING]


@pytest.fixture
def config_file(hookforge_tmp):
    path = hookforge_tmp / "ddp.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_two_processes_match_one_with_the_same_global_batch(config_file, hookforge_tmp, hookforge_cli):
    single = hookforge_cli("train", "-c", config_file, "loop.batch_size=64", "--run-dir", "single")
    assert single.returncode == 0, single.stderr
    ddp = torchrun("train", "-c", config_file, "--run-dir", "ddp", cwd=hookforge_tmp)
    assert ddp.returncode == 0, ddp.stderr
    assert ddp.stdout.count("run finished") == 1  # one record, written by rank 0
    assert sorted(p.name for p in hookforge_tmp.iterdir() if p.is_dir()) == ["ddp", "single"]
    info = RunRecord.open(hookforge_tmp / "ddp").info()
    assert info["status"] == "finished" and info["world_size"] == 2
    one = {(s, n): v for _, s, n, v in _metrics(hookforge_tmp / "single")}
    two = {(s, n): v for _, s, n, v in _metrics(hookforge_tmp / "ddp")}
    assert one.keys() == two.keys()
    for key in [("train", "loss"), ("val", "loss"), ("val", "accuracy"), ("test", "accuracy")]:
        assert two[key] == pytest.approx(one[key], abs=1e-4), key


def test_interrupted_distributed_run_resumes_exactly(config_file, hookforge_tmp, hookforge_installed):
    from pathlib import Path

    env = hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}},
                              [Path(__file__).parent])
    straight = torchrun("train", "-c", config_file, "--run-dir", "straight", cwd=hookforge_tmp, env=env)
    assert straight.returncode == 0, straight.stderr
    killed = torchrun("train", "-c", config_file, "--run-dir", "killed", cwd=hookforge_tmp,
                      env={**env, "HOOKFORGE_TEST_KILL": "30:SIGINT"})
    assert killed.returncode != 0
    record = RunRecord.open(hookforge_tmp / "killed")
    assert record.status == "interrupted"
    last = json.loads((hookforge_tmp / "killed" / "checkpoints" / "last" / "checkpoint.json").read_text())
    assert 30 <= last["step"] < 57  # mid-run: every rank agreed at the next reporting point
    resumed = torchrun("train", "--resume", "killed", cwd=hookforge_tmp, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert record.status == "finished"
    weights = "checkpoints/last/model.safetensors"
    assert (hookforge_tmp / "killed" / weights).read_bytes() == \
        (hookforge_tmp / "straight" / weights).read_bytes()
    assert _metrics(hookforge_tmp / "killed") == _metrics(hookforge_tmp / "straight")
