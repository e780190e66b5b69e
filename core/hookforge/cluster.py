"""``hookforge submit``: any hookforge command as jobs on a batch system, Slurm or HTCondor.

A command becomes a list of jobs first (:func:`plan`): a ``train`` sweep (``KEY=a,b,c``) one
job per point, as one job array; ``search --workers N`` N workers of one study on its shared
``--storage``; a ``pipeline`` one job per stage, each depending on its needs (Slurm
``afterok``); anything else one job. Every job runs the same hookforge command a user would type
and writes its state to ``status/<index>.json`` in the job directory, beside ``submit.json``
(the backend, the jobs, their ids and log files), which ``hookforge status JOB_DIR`` reads.

Slurm goes through ``submitit``: it writes the sbatch script, submits, and on pre-emption or a
time limit calls the job's ``checkpoint()``, which resubmits the command as its resume (``train
--resume RUN_DIR``, ``pipeline ... --resume``), so a requeued job continues from ``last``.
HTCondor gets a submit description (a ``.sub`` file) checked by the ``htcondor`` bindings'
parser and handed to ``condor_submit`` where one exists.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hookforge.errors import UsageError

SUBMIT_FILE = "submit.json"


@dataclass
class Resources:
    partition: str | None = None
    time_min: int = 60
    cpus: int = 1
    gpus: int = 0
    mem_gb: float = 4.0
    array_parallelism: int = 64  # array tasks running at once
    account: str | None = None


@dataclass
class Job:
    index: int
    name: str
    argv: list[str]  # a hookforge command line, without "hookforge"
    needs: list[int] = field(default_factory=list)
    array: str | None = None  # jobs sharing a name here are submitted as one array
    job_id: str | None = None
    stdout: str | None = None
    stderr: str | None = None


# -- from a command to jobs -------------------------------------------------------------------------
def _option(argv: list[str], *names: str) -> str | None:
    for i, item in enumerate(argv):
        for name in names:
            if item == name and i + 1 < len(argv):
                return argv[i + 1]
            if item.startswith(name + "="):
                return item.split("=", 1)[1]
    return None


def _without(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == name:
            skip = True
            continue
        if item.startswith(name + "="):
            continue
        out.append(item)
    return out


def plan(command: list[str], job_dir: Path) -> list[Job]:
    """The jobs of a hookforge command (see the module docstring)."""
    from hookforge.cli.main import _is_sweep, _split_top_level

    if not command:
        raise UsageError("submit needs a hookforge command after --, e.g. -- train -c config.yaml")
    if command[0] == "hookforge":
        command = command[1:]
    verb = command[0]
    if verb == "train":
        sweep = {}
        plain = []
        for item in command[1:]:
            key, sep, value = item.partition("=")
            if sep and not item.startswith("-") and _is_sweep(value):
                sweep[key] = _split_top_level(value)
            else:
                plain.append(item)
        if _option(plain, "--resume"):
            return [Job(0, "train", command)]
        if not sweep:
            run_dir = _option(plain, "--run-dir") or str(job_dir / "runs" / "0")
            return [Job(0, "train", ["train", *_without(plain, "--run-dir"), "--run-dir", run_dir])]
        if _option(plain, "--run-dir"):
            raise UsageError("a sweep makes one run per point: leave --run-dir out (each point "
                             "gets JOB_DIR/runs/N)")
        points = list(itertools.product(*sweep.values()))
        return [Job(i, "train", ["train", *plain, *(f"{k}={v}" for k, v in zip(sweep, point,
                                                                             strict=True)),
                                 "--run-dir", str(job_dir / "runs" / str(i))], array="sweep")
                for i, point in enumerate(points)]
    if verb == "search":
        workers = int(_option(command, "--workers") or 1)
        if workers == 1:
            return [Job(0, "search", command)]
        if not _option(command, "--storage"):
            raise UsageError("search --workers N on a cluster runs N jobs on one study: give "
                             "--storage (a shared sqlite:///, postgresql:// or journal URL)")
        single = [*_without(command, "--workers"), "--workers", "1"]
        return [Job(i, f"search-worker-{i}", single, array="workers") for i in range(workers)]
    if verb == "pipeline":
        from hookforge.pipelines import Pipeline, select

        file = _option(command, "-c", "--config")
        if not file:
            raise UsageError("pipeline needs -c FILE")
        pipeline = Pipeline(file, _option(command, "--output-dir"))
        stages = []
        rest = command[1:]
        if "--stages" in rest:
            at = rest.index("--stages") + 1
            while at < len(rest) and not rest[at].startswith("-") and "=" not in rest[at]:
                stages.append(rest[at])
                at += 1
        chosen = select(pipeline.plan, pipeline.graph, stages,
                        [_option(command, "--skip")] if _option(command, "--skip") else [],
                        _option(command, "--from"))
        overrides = [a for a in rest if "=" in a and not a.startswith("-")]
        jobs: list[Job] = []
        index = {}
        for name in chosen:
            index[name] = len(jobs)
            jobs.append(Job(len(jobs), f"stage-{name}", [
                "pipeline", "-c", str(Path(file).resolve()), "--stages", name, "--output-dir",
                str(pipeline.directory.resolve()), "--resume", *overrides],
                needs=[index[n] for n in pipeline.graph[name] if n in index]))
        return jobs
    return [Job(0, verb, command)]


def resume_argv(argv: list[str]) -> list[str]:
    """The command that continues ``argv`` after a pre-emption."""
    if argv[:1] == ["train"] and _option(argv, "--run-dir") and not _option(argv, "--resume"):
        run_dir = _option(argv, "--run-dir")
        if run_dir and (Path(run_dir) / "run.json").is_file():
            return ["train", "--resume", run_dir]
    if argv[:1] == ["pipeline"] and "--resume" not in argv:
        return [*argv, "--resume"]
    return argv


# -- what runs on a node ---------------------------------------------------------------------------------
def _write_status(path: Path, **fields: Any) -> None:
    from hookforge.fileio import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    atomic_write_json(path, {**previous, **fields})


def run_command(argv: list[str], status_file: Path, job_id: str | None = None) -> int:
    """Run one hookforge command here, recording its state in ``status_file``."""
    from hookforge.cli.main import main

    now = datetime.now().astimezone().isoformat(timespec="seconds")
    _write_status(status_file, state="RUNNING", started=now, job_id=job_id, host=os.uname().nodename,
                  argv=argv)
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == -1:  # submitit requeued the job after a pre-emption signal: it runs again
            _write_status(status_file, state="REQUEUED",
                          ended=datetime.now().astimezone().isoformat(timespec="seconds"))
            raise
    except BaseException:
        code = 1
    state = "COMPLETED" if code == 0 else "INTERRUPTED" if code == 130 else "FAILED"
    _write_status(status_file, state=state, exit_code=code,
                  ended=datetime.now().astimezone().isoformat(timespec="seconds"))
    return code


class SlurmCommand:
    """The callable submitit runs on a node: one hookforge command; on pre-emption or time-out,
    submitit calls :meth:`checkpoint`, which requeues the command's resume."""

    def __init__(self, argv: list[str], cwd: str, status_file: str) -> None:
        self.argv, self.cwd, self.status_file = argv, cwd, status_file

    def __call__(self) -> int:
        os.chdir(self.cwd)
        code = run_command(self.argv, Path(self.status_file), os.environ.get("SLURM_JOB_ID"))
        if code != 0:
            raise RuntimeError(f"hookforge {' '.join(self.argv)} exited with {code}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(
            SlurmCommand(resume_argv(self.argv), self.cwd, self.status_file))


# -- submitting -------------------------------------------------------------------------------------------
def submit(backend: str, command: list[str], resources: Resources | None = None,
           job_dir: str | Path | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Submit ``command`` (a hookforge command line) to ``backend``; returns what submit.json
    records (with dry_run: the plan, and the batch script or submit description)."""
    resources = resources or Resources()
    if backend not in ("slurm", "condor"):
        raise UsageError(f"--backend {backend}: choose slurm or condor")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    verb = (command[1] if command[:1] == ["hookforge"] else command[0]) if command else "job"
    job_dir = Path(job_dir or Path("outputs") / "jobs" / f"{stamp}_{verb}").resolve()
    if (job_dir / SUBMIT_FILE).exists():
        raise UsageError(f"--job-dir {job_dir} already holds a submission; choose another")
    jobs = plan(command, job_dir)
    record: dict[str, Any] = {"backend": backend, "command": command, "job_dir": str(job_dir),
                              "cwd": os.getcwd(), "resources": asdict(resources),
                              "submitted": datetime.now().astimezone().isoformat(timespec="seconds")}
    if backend == "slurm":
        record["jobs"], record["script"] = _slurm(jobs, resources, job_dir, dry_run)
    else:
        record["jobs"], record["script"] = _condor(jobs, resources, job_dir, dry_run)
    if not dry_run:
        from hookforge.fileio import atomic_write_json

        atomic_write_json(job_dir / SUBMIT_FILE, record)
    record["dry_run"] = dry_run
    return record


def _slurm(jobs: list[Job], resources: Resources, job_dir: Path,
           dry_run: bool) -> tuple[list[dict[str, Any]], str]:
    import submitit

    parameters: dict[str, Any] = {"timeout_min": resources.time_min, "cpus_per_task": resources.cpus,
                                  "mem_gb": resources.mem_gb, "slurm_array_parallelism":
                                  resources.array_parallelism, "slurm_signal_delay_s": 120}
    if resources.gpus:
        parameters["gpus_per_node"] = resources.gpus
    if resources.partition:
        parameters["slurm_partition"] = resources.partition
    if resources.account:
        parameters["slurm_account"] = resources.account
    script = _sbatch_preview(job_dir, parameters, jobs)
    if dry_run:
        return [asdict(j) for j in jobs], script
    job_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("sbatch") is None:
        raise UsageError("slurm: `sbatch` is not on PATH: submit from a machine with the Slurm "
                         "client tools (a login node), or use --dry-run to see the jobs")
    executor = submitit.AutoExecutor(folder=job_dir / "slurm", cluster="slurm")
    cwd = os.getcwd()

    def command(job: Job) -> SlurmCommand:
        return SlurmCommand(job.argv, cwd, str(job_dir / "status" / f"{job.index}.json"))

    try:
        with _captured_stderr() as captured:  # sbatch's own complaints: into our one line
            _submit_groups(executor, jobs, parameters, command)
    except (OSError, subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as exc:
        said = [line for line in captured.text().splitlines() if line.strip()]
        detail = said[-1] if said else str(getattr(exc, "output", None) or exc).strip()
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise UsageError(f"slurm: submitting with `sbatch` failed: "
                         f"{(str(detail).strip().splitlines() or ['no output'])[-1]}") from None
    return [asdict(j) for j in jobs], script


class _Captured:
    def __init__(self, file: Any) -> None:
        self.file = file

    def text(self) -> str:
        self.file.seek(0)
        return self.file.read().decode(errors="replace")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[_Captured]:
    """File descriptor 2 into a temporary file for the block (child processes write there)."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield _Captured(file)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _submit_groups(executor: Any, jobs: list[Job], parameters: dict[str, Any], command: Any) -> None:
    """Submit the jobs: each array group as one array job, each with its ``afterok`` needs."""
    groups = itertools.groupby(jobs, key=lambda j: j.array or f"single-{j.index}")
    for _key, members in groups:
        members = list(members)
        needs = sorted({jobs[n].job_id for m in members for n in m.needs if jobs[n].job_id})
        extra = {"dependency": "afterok:" + ":".join(needs)} if needs else {}
        executor.update_parameters(name=f"hookforge-{members[0].name}", **parameters,
                                   slurm_additional_parameters=extra)
        if len(members) > 1:  # one array job
            with executor.batch():
                submitted = [executor.submit(command(m)) for m in members]
        else:
            submitted = [executor.submit(command(members[0]))]
        for member, handle in zip(members, submitted, strict=True):
            member.job_id = str(handle.job_id)
            member.stdout, member.stderr = str(handle.paths.stdout), str(handle.paths.stderr)


def _sbatch_preview(job_dir: Path, parameters: dict[str, Any], jobs: list[Job]) -> str:
    """The #SBATCH header submitit writes for these parameters (a dry run shows it)."""
    try:
        from submitit.slurm.slurm import _make_sbatch_string

        names = {"timeout_min": "time", "cpus_per_task": "cpus_per_task", "mem_gb": "mem",
                 "slurm_partition": "partition", "gpus_per_node": "gpus_per_node",
                 "slurm_account": "account", "slurm_signal_delay_s": "signal_delay_s"}
        options = {names[k]: v for k, v in parameters.items() if k in names}
        options["mem"] = f"{int(parameters['mem_gb'] * 1024)}MB"
        if len(jobs) > 1 and jobs[0].array:  # submitit writes --array=0-(N-1)%parallelism
            options["map_count"] = len(jobs)
            options["array_parallelism"] = parameters["slurm_array_parallelism"]
        return _make_sbatch_string(command=f"{sys.executable} -u -m submitit.core._submit "
                                           f"{job_dir / 'slurm'}", folder=job_dir / "slurm",
                                   job_name="hookforge", **options)
    except Exception as exc:  # a private helper: the preview must never stop a submission
        return f"(sbatch preview unavailable: {exc})"


def condor_description(jobs: list[Job], resources: Resources, job_dir: Path, cwd: str) -> str:
    """The HTCondor submit description: one ``queue`` over every job's command line."""
    logs = job_dir / "logs"
    lines = [
        "# written by hookforge submit --backend condor",
        "universe = vanilla",
        f"executable = {sys.executable}",
        f"initialdir = {cwd}",
        "arguments = $(hookforge_args)",
        f"output = {logs}/job-$(Process).out",
        f"error = {logs}/job-$(Process).err",
        f"log = {logs}/condor.log",
        f"request_cpus = {resources.cpus}",
        f"request_memory = {int(resources.mem_gb * 1024)}",
        *([f"request_gpus = {resources.gpus}"] if resources.gpus else []),
        f"+MaxRuntime = {resources.time_min * 60}",
        "getenv = False",
        'environment = "PYTHONUNBUFFERED=1"',
        "should_transfer_files = NO",
        "queue hookforge_args from (",
    ]
    for job in jobs:
        argv = ["-m", "hookforge.cluster", str(job_dir / "status" / f"{job.index}.json"), *job.argv]
        # HTCondor's "new" argument syntax: the whole list in double quotes, each argument in
        # single quotes (a single quote doubled inside one)
        quoted = " ".join("'" + a.replace("'", "''").replace('"', '""') + "'" for a in argv)
        lines.append(f'  "{quoted}"')
    lines.append(")")
    return "\n".join(lines) + "\n"


def check_description(text: str) -> None:
    """Parse a submit description with the htcondor bindings (a clear error if it is invalid)."""
    try:
        import htcondor2 as htcondor
    except ImportError:
        try:
            import htcondor  # type: ignore[no-redef]
        except ImportError:
            raise UsageError("condor: the htcondor Python bindings are not installed "
                             "(pip install 'hookforge[cluster]')") from None
    try:
        parsed = htcondor.Submit(text)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"condor: the submit description does not parse: {exc}") from None
    for key in ("executable", "arguments", "request_cpus"):
        if not parsed.get(key):
            raise UsageError(f"condor: the submit description has no {key}")
    if not parsed.getQArgs():
        raise UsageError("condor: the submit description queues nothing")


def _condor(jobs: list[Job], resources: Resources, job_dir: Path,
            dry_run: bool) -> tuple[list[dict[str, Any]], str]:
    if any(j.needs for j in jobs):
        # dependent stages need DAGMan; one job running the whole pipeline resumes the same way
        first = jobs[0].argv
        at = first.index("--stages")
        argv = [*first[:at], *first[at + 2:]]
        jobs = [Job(0, "pipeline", argv)]
    text = condor_description(jobs, resources, job_dir, os.getcwd())
    check_description(text)
    if dry_run:
        return [asdict(j) for j in jobs], text
    tool = shutil.which("condor_submit")
    if tool is None:
        raise UsageError(f"condor: condor_submit is not on PATH (no HTCondor here); "
                         f"--dry-run prints the description ({len(jobs)} jobs) without submitting")
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    sub = job_dir / "job.sub"
    sub.write_text(text)
    done = subprocess.run([tool, str(sub)], capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError(f"condor: `condor_submit {sub}` failed: "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    cluster_id = next((w.rstrip(".") for line in done.stdout.splitlines() if "cluster" in line
                       for w in line.split()[-1:]), None)
    for job in jobs:
        job.job_id = f"{cluster_id}.{job.index}" if cluster_id else None
        job.stdout = str(job_dir / "logs" / f"job-{job.index}.out")
        job.stderr = str(job_dir / "logs" / f"job-{job.index}.err")
    return [asdict(j) for j in jobs], text


# -- state --------------------------------------------------------------------------------------------------
def job_states(job_dir: str | Path) -> list[dict[str, Any]]:
    """Every job of a submission with its state: what the job recorded itself, else what the
    queue says (``squeue`` / ``condor_q``), else UNKNOWN."""
    from hookforge.fileio import read_json

    job_dir = Path(job_dir)
    record = read_json(job_dir / SUBMIT_FILE)
    out = []
    for job in record.get("jobs", []):
        status_file = job_dir / "status" / f"{job['index']}.json"
        status = read_json(status_file) if status_file.is_file() else {}
        state = status.get("state")
        if state in (None, "RUNNING", "REQUEUED"):
            queued = _queue_state(record["backend"], job.get("job_id"))
            state = queued or state or ("PENDING" if job.get("job_id") else "UNKNOWN")
            if state == "RUNNING" and queued is None and status:
                state = "FAILED"  # it left the queue without recording an end: killed
        out.append({**job, "state": state, "exit_code": status.get("exit_code"),
                    "log": job.get("stderr")})
    return out


def _queue_state(backend: str, job_id: str | None) -> str | None:
    if not job_id:
        return None
    if backend == "slurm" and shutil.which("squeue"):
        done = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                              text=True)
        states = [s for s in done.stdout.split() if s]
        return states[0] if done.returncode == 0 and states else None
    if backend == "condor" and shutil.which("condor_q"):
        done = subprocess.run(["condor_q", job_id, "-af", "JobStatus"], capture_output=True,
                              text=True)
        codes = {"1": "PENDING", "2": "RUNNING", "3": "REMOVED", "4": "COMPLETED", "5": "HELD"}
        value = done.stdout.strip()
        return codes.get(value) if done.returncode == 0 and value else None
    return None


def describe_command(argv: list[str]) -> str:
    return "hookforge " + " ".join(shlex.quote(a) for a in argv)


if __name__ == "__main__":  # on an HTCondor node: python -m hookforge.cluster STATUS_FILE ARGV...
    sys.exit(run_command(sys.argv[2:], Path(sys.argv[1]), os.environ.get("CONDOR_JOB_ID")))
