"""`hookforge submit` on a real single-node Slurm cluster started here (slurmctld, slurmd and munge
on localhost), HTCondor submit descriptions checked by the htcondor bindings' parser, and the
errors a user meets when the batch system is not there or a job dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm cluster on localhost; yields the environment its clients need."""
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing; .ci/run installs "
                    f"Debian's slurm-wlm and munge)")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root")
    if not Path("/etc/munge/munge.key").is_file():
        pytest.skip("munge has no key (/etc/munge/munge.key)")
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge", "log"):
        (base / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    socket_path = base / "munge" / "munge.socket"
    conf = base / "slurm.conf"
    # cred_expire: a requeued job may start again that many seconds later (default 120)
    conf.write_text(f"""ClusterName=hookforge-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path},cred_expire=5
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    sbin = lambda name: shutil.which(name) or f"/usr/sbin/{name}"  # noqa: E731
    key = base / "munge" / "munge.key"  # a copy owned by this (root) process, as munged wants
    shutil.copyfile("/etc/munge/munge.key", key)
    key.chmod(0o400)
    subprocess.run([sbin("munged"), "--force", f"--key-file={key}", f"--socket={socket_path}",
                    f"--pid-file={base}/munge/munged.pid",
                    f"--log-file={base}/munge/munged.log", f"--seed-file={base}/munge/seed"],
                   check=True, env=env, capture_output=True)
    subprocess.run([sbin("slurmctld")], check=True, env=env, capture_output=True)
    subprocess.run([sbin("slurmd")], check=True, env=env, capture_output=True)
    try:
        _wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env,
                                              capture_output=True, text=True).stdout,
              30, "the Slurm node to come up")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        for pid_file in (base / "slurmd.pid", base / "slurmctld.pid", base / "munge" / "munged.pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def _states(hookforge_cli, job_dir, env):
    done = hookforge_cli("status", str(job_dir), "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["jobs"]


def _wait_jobs(hookforge_cli, job_dir, env, timeout=180):
    def finished():
        jobs = _states(hookforge_cli, job_dir, env)
        return jobs if all(j["state"] in ("COMPLETED", "FAILED") for j in jobs) else None

    return _wait(finished, timeout, f"the jobs of {job_dir}")


def test_a_sweep_runs_as_a_job_array(slurm, hookforge_cli, hookforge_tmp):
    submitted = hookforge_cli("submit", "--backend", "slurm", "--time", "10", "--mem", "1",
                              "--job-dir", "sweep", "--", "train", "-c", str(QUICKSTART),
                              "run.seed=1,2,3", "run.progress=false", env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    record = json.loads(Path("sweep/submit.json").read_text())
    ids = [j["job_id"] for j in record["jobs"]]
    assert len(ids) == 3 and len({i.split("_")[0] for i in ids}) == 1  # one array: ID_0, ID_1, ID_2
    jobs = _wait_jobs(hookforge_cli, "sweep", slurm)
    assert [j["state"] for j in jobs] == ["COMPLETED"] * 3
    seeds = []
    for i in range(3):
        info = json.loads(Path(f"sweep/runs/{i}/run.json").read_text())
        assert info["status"] == "finished"
        seeds.append(yaml.safe_load(Path(f"sweep/runs/{i}/config.yaml").read_text())["run"]["seed"])
    assert seeds == [1, 2, 3]


def test_a_pipeline_becomes_dependent_jobs(slurm, hookforge_cli, hookforge_tmp):
    Path("p.yaml").write_text(yaml.safe_dump({
        "pipeline": {"name": "two", "output_dir": "out"},
        "stages": [{"name": "fit", "command": "train", "config": str(QUICKSTART),
                    "overrides": ["run.progress=false"]},
                   {"name": "score", "command": "evaluate", "run": "${stages.fit.run_dir}",
                    "splits": ["val", "test"]}]}))
    submitted = hookforge_cli("submit", "--backend", "slurm", "--job-dir", "jobs", "--mem", "1",
                              "--", "pipeline", "-c", "p.yaml", env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    jobs = json.loads(Path("jobs/submit.json").read_text())["jobs"]
    assert [j["needs"] for j in jobs] == [[], [0]]
    done = _wait_jobs(hookforge_cli, "jobs", slurm)
    assert [j["state"] for j in done] == ["COMPLETED", "COMPLETED"]
    record = json.loads(Path("out/two/pipeline.json").read_text())
    assert {n: s["status"] for n, s in record["stages"].items()} == {"fit": "finished",
                                                                      "score": "finished"}
    status = hookforge_cli("status", "out/two")
    assert "fit" in status.stdout and "finished" in status.stdout


def test_a_job_that_dies_shows_failed_with_its_log(slurm, hookforge_cli, hookforge_tmp):
    submitted = hookforge_cli("submit", "--backend", "slurm", "--job-dir", "dies", "--mem", "1",
                              "--", "train", "-c", "does-not-exist.yaml", env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    jobs = _wait_jobs(hookforge_cli, "dies", slurm)
    assert jobs[0]["state"] == "FAILED" and jobs[0]["exit_code"] == 2
    shown = hookforge_cli("status", "dies", env=slurm)
    assert "FAILED" in shown.stdout and f"log: {jobs[0]['log']}" in shown.stdout
    assert "does-not-exist.yaml" in Path(jobs[0]["log"]).read_text()


def test_slurm_not_reachable_is_one_line(hookforge_cli, hookforge_tmp, tmp_path):
    env = {"PATH": str(tmp_path)}  # no sbatch here
    done = hookforge_cli("submit", "--backend", "slurm", "--job-dir", "j", "--", "train", "-c",
                         str(QUICKSTART), env=env)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "slurm: `sbatch` is not on PATH" in lines[0], done.stderr
    assert not Path("j", "submit.json").exists()


def test_dry_run_prints_the_sbatch_header_and_submits_nothing(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("submit", "--backend", "slurm", "--dry-run", "--partition", "gpu",
                         "--gpus", "1", "--cpus", "4", "--time", "30", "--job-dir", "j", "--",
                         "train", "-c", str(QUICKSTART), "run.seed=1,2")
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --partition=gpu" in done.stdout and "#SBATCH --array=0-1%" in done.stdout
    assert "#SBATCH --cpus-per-task=4" in done.stdout and "#SBATCH --time=30" in done.stdout
    assert not Path("j").exists()


def test_search_workers_share_one_storage(hookforge_cli, hookforge_tmp):
    refused = hookforge_cli("submit", "--backend", "slurm", "--dry-run", "--", "search", "-c",
                            str(ROOT / "configs" / "sweep_centroid.yaml"), "--workers", "3")
    assert refused.returncode == 2 and "give --storage" in refused.stderr
    done = hookforge_cli("submit", "--backend", "slurm", "--dry-run", "--", "search", "-c",
                         str(ROOT / "configs" / "sweep_centroid.yaml"), "--workers", "3",
                         "--storage", "sqlite:///study.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("--workers 1") == 3 and "#SBATCH --array=0-2%" in done.stdout


def test_condor_description_parses_and_submits_where_condor_exists(hookforge_cli, hookforge_tmp):
    pytest.importorskip("htcondor2", reason="the htcondor bindings are not installed")
    done = hookforge_cli("submit", "--backend", "condor", "--dry-run", "--cpus", "2", "--gpus", "1",
                         "--mem", "8", "--job-dir", "c", "--", "train", "-c", str(QUICKSTART),
                         "run.seed=1,2,3", "run.name=it's")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "request_cpus = 2" in text and "request_gpus = 1" in text and "request_memory = 8192" in text
    assert "queue hookforge_args from (" in text and text.count("'train'") == 3
    import htcondor2

    description = text[text.index("# written by hookforge"):text.rindex(")") + 1]
    parsed = htcondor2.Submit(description)
    assert parsed["executable"].endswith("python") or "python" in parsed["executable"]
    items = parsed.getQArgs()
    assert "hookforge_args from" in items
    from hookforge.cluster import check_description

    with pytest.raises(Exception, match="does not parse"):
        check_description("universe = vanilla\nexecutable =\nthis is not ===valid\n")
    if shutil.which("condor_submit") is None:
        missing = hookforge_cli("submit", "--backend", "condor", "--job-dir", "c2", "--", "train",
                                "-c", str(QUICKSTART))
        assert missing.returncode == 2 and "condor_submit is not on PATH" in missing.stderr


def test_a_preempted_job_requeues_and_resumes_from_last(slurm, hookforge_cli, hookforge_tmp,
                                                        tiny_config):
    """Slurm's pre-emption signal (USR2, what --signal=USR2@120 sends before a time limit):
    submitit calls the job's checkpoint(), which requeues `train --resume RUN_DIR`."""
    config = tiny_config(data={"name": "sklearn", "dataset": "digits"},
                         model={"name": "mlp", "hidden": [64]},
                         loop={"name": "supervised", "epochs": 200, "batch_size": 32,
                               "device": "cpu", "checkpoint_every_n_steps": 5,
                               "early_stopping": {"metric": None}},
                         run={"log_every_n_steps": 5})
    Path("mlp.yaml").write_text(yaml.safe_dump(config))
    submitted = hookforge_cli("submit", "--backend", "slurm", "--job-dir", "pre", "--mem", "1",
                              "--", "train", "-c", "mlp.yaml", env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(Path("pre/submit.json").read_text())["jobs"][0]
    run_dir = Path(job["argv"][job["argv"].index("--run-dir") + 1])
    _wait(lambda: (run_dir / "checkpoints" / "last").is_dir(), 120, "a first checkpoint")
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], env=slurm, check=True)
    _wait(lambda: json.loads((run_dir / "run.json").read_text()).get("resumes"), 120,
          "the requeued job to resume the run")
    subprocess.run(["scancel", job["job_id"]], env=slurm)  # no need to train all 200 epochs
    resumes = json.loads((run_dir / "run.json").read_text())["resumes"]
    assert resumes[0]["from_step"] >= 5  # from 'last', not from the start
    second = json.loads(Path("pre/status/0.json").read_text())
    assert second["argv"] == ["train", "--resume", str(run_dir)]  # what checkpoint() requeued
