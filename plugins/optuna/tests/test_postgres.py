"""Two workers share one study in a real PostgreSQL server, started by the test on loopback."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SPACE = {"model.temperature": {"type": "loguniform", "low": 0.05, "high": 5.0}}


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres_url():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        print("SKIP reason: no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        pytest.skip("PostgreSQL is not installed and could not be installed here")
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="hookforge-pg-"))  # outside pytest's root-only tmp tree
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(data, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "hookforge"], check=True,
                   capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(data / "server.log"), "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        psql = _bin("psql") or "psql"
        subprocess.run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "hookforge", "-d", "postgres",
                        "-c", "CREATE DATABASE hpo"], check=True, capture_output=True)
        yield f"postgresql://hookforge@127.0.0.1:{port}/hpo"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres_url, plan, hookforge_cli, hookforge_tmp,
                                              slow_env):
    result = hookforge_cli("search", "-c", plan({"n_trials": 6, "space": SPACE}, model={"name": "slow"}),
                           "--storage", postgres_url, "--study", "shared", "--workers", "2", env=slow_env)
    assert result.returncode == 0, result.stderr
    import optuna

    study = optuna.load_study(study_name="shared.search", storage=postgres_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 6 <= len(complete) <= 7
    rows = json.loads((hookforge_tmp / "outputs" / "hpo" / "shared" / "search" / "trials.json").read_text())
    assert {r["number"] for r in rows} == {t.number for t in study.trials}
    pids = {json.loads((Path(r["run_dir"]) / "run.json").read_text())["pid"] for r in rows
            if r["state"] == "complete"}
    assert len(pids) == 2
