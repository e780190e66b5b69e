"""``hookforge status DIR``: what a directory hookforge wrote says about itself.

A run (run.json): its status, epochs and steps, checkpoints. A pipeline (pipeline.json): every
stage's status and directory. A submission (submit.json): every job's id, state and log (a job
that failed points at its log). An export (manifest.json): its runs, after verifying every
file's hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookforge.errors import UsageError


def describe(directory: str | Path) -> tuple[list[str], dict[str, Any]]:
    from hookforge.fileio import read_json

    path = Path(directory)
    if not path.is_dir():
        raise UsageError(f"status: {path} does not exist")
    if (path / "submit.json").is_file():
        return _submission(path)
    if (path / "pipeline.json").is_file():
        data = read_json(path / "pipeline.json")
        lines = [f"pipeline {data.get('name')}: {data.get('status')} "
                 f"(started {data.get('started')}, ended {data.get('ended') or '-'})"]
        for name in data.get("plan") or list(data.get("stages", {})):
            stage = data.get("stages", {}).get(name)
            if stage is None:
                lines.append(f"  {name:16} not run")
                continue
            where = (stage.get("outputs") or {}).get("run_dir") or stage.get("directory") or ""
            lines.append(f"  {name:16} {stage.get('status'):11} {where}")
            if stage.get("error"):
                lines.append(f"  {'':16} {stage['error']}")
        return lines, data
    if (path / "manifest.json").is_file():
        from hookforge.export import verify

        manifest = verify(path)
        lines = [f"export {path}: {len(manifest['files'])} files, every sha256 verified"]
        lines += [f"  {name:16} from {part['run_dir']} ({part['checkpoint']})"
                  for name, part in manifest["runs"].items()]
        return lines, manifest
    if (path / "run.json").is_file():
        from hookforge.record import RunRecord

        info = RunRecord.open(path).info()
        fit = info.get("fit") or {}
        lines = [f"run {info.get('name')}: {info.get('status')}",
                 f"  started {info.get('start')}, ended {info.get('end') or '-'}"]
        if fit:
            lines.append(f"  epochs {fit.get('epochs')}, steps {fit.get('steps')}, "
                         f"stop {fit.get('stop_reason') or '-'}")
        checkpoints = sorted(p.name for p in (path / "checkpoints").glob("*") if p.is_dir()) \
            if (path / "checkpoints").is_dir() else []
        lines.append(f"  checkpoints: {', '.join(checkpoints) or 'none'}")
        return lines, info
    raise UsageError(f"status: {path} is not a run, pipeline, submission or export directory "
                     f"(no run.json, pipeline.json, submit.json or manifest.json)")


def _submission(path: Path) -> tuple[list[str], dict[str, Any]]:
    from hookforge.cluster import describe_command, job_states
    from hookforge.fileio import read_json

    record = read_json(path / "submit.json")
    jobs = job_states(path)
    lines = [f"{record['backend']} submission of {len(jobs)} job(s), {record['submitted']}"]
    for job in jobs:
        lines.append(f"  job {job['index']:>3} {job.get('job_id') or '-':>10} {job['state']:11} "
                     f"{describe_command(job['argv'])}")
        if job["state"] in ("FAILED", "INTERRUPTED", "HELD", "REMOVED"):
            lines.append(f"  {'':15} log: {job.get('log')}")
    return lines, {**record, "jobs": jobs}
