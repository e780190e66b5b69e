"""The run record: one directory per run, laid out as DESIGN.md says.

```
config.yaml  run.json  events.jsonl  metrics.csv  evaluation.json  dataset.json  splits.json
checkpoints/{best,last,step-N}/   figures/*.png
```

:class:`RunRecord` knows the layout and reads and writes whole files atomically. The append-only
logs are written by the ``local`` tracker (:mod:`hookforge.builtins.trackers.local`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from hookforge.errors import CheckpointError, UsageError
from hookforge.fileio import (
    atomic_write_dir,
    atomic_write_json,
    atomic_write_text,
    check_writable_dir,
    existing_dir,
    read_json,
    sha256_file,
)
from hookforge.types import CheckpointInfo

METRICS_HEADER = ("step", "epoch", "split", "name", "value")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


class RunRecord:
    """A run directory. Create one with :meth:`create`, open an existing one with :meth:`open`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- layout ---------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.yaml")
    run_file = property(lambda self: self.path / "run.json")
    events_file = property(lambda self: self.path / "events.jsonl")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    evaluation_file = property(lambda self: self.path / "evaluation.json")
    dataset_file = property(lambda self: self.path / "dataset.json")
    splits_file = property(lambda self: self.path / "splits.json")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    figures_dir = property(lambda self: self.path / "figures")

    def __repr__(self) -> str:
        return f"RunRecord({str(self.path)!r})"

    # -- creation -------------------------------------------------------------------------------
    @classmethod
    def create(cls, output_dir: str | Path, name: str, run_dir: str | Path | None = None) -> RunRecord:
        """A new, empty run directory: ``run_dir`` or ``OUTPUT_DIR/runs/<YYYYmmdd-HHMMSS>_<name>``."""
        if run_dir is not None:
            path = Path(run_dir)
            if path.is_dir() and any(path.iterdir()):
                raise UsageError(f"--run-dir {path} exists and is not empty; use --resume {path} "
                                 f"to continue that run, or choose another directory")
            check_writable_dir(path, "--run-dir")
        else:
            runs = check_writable_dir(Path(output_dir) / "runs", "run.output_dir: the run folder")
            base = runs / f"{datetime.now():%Y%m%d-%H%M%S}_{_slug(name)}"
            path, n = base, 1
            while True:  # exist_ok=False: two runs started in the same second get two folders
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    path = base.with_name(f"{base.name}-{n}")
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunRecord:
        """An existing run directory; anything else is a UsageError naming what is missing."""
        path = Path(path)
        if not path.is_dir():
            raise UsageError(f"not a run directory: {path} does not exist")
        missing = [f for f in ("run.json", "config.yaml") if not (path / f).is_file()]
        if missing:
            raise UsageError(f"not a run directory: {path} has no {' or '.join(missing)}")
        record = cls(path)
        try:
            record.info()
        except (ValueError, OSError) as exc:
            raise UsageError(f"not a run directory: {path}/run.json is unreadable ({exc})") from None
        return record

    # -- whole files ----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return read_json(self.run_file)

    def update_info(self, **fields: Any) -> dict[str, Any]:
        data = self.info() if self.run_file.exists() else {}
        data.update(fields)
        atomic_write_json(self.run_file, data)
        return data

    @property
    def status(self) -> str:
        return self.info().get("status", "unknown")

    def write_config(self, config: dict[str, Any]) -> None:
        from hookforge.config.loader import dump_yaml
        from hookforge.config.secrets import redact

        atomic_write_text(self.config_file, dump_yaml(redact(config)))

    def read_config(self) -> dict[str, Any]:
        from hookforge.config.loader import read_yaml

        return read_yaml(self.config_file)

    def write_json(self, name: str, data: Any, *, compact: bool = False) -> Path:
        target = self.path / name
        atomic_write_json(target, data, compact=compact)
        return target

    def read_json(self, name: str, default: Any = None) -> Any:
        target = self.path / name
        return read_json(target) if target.exists() else default

    def evaluation(self) -> dict[str, dict[str, float]]:
        return self.read_json("evaluation.json", {}) or {}

    def merge_evaluation(self, split: str, metrics: dict[str, Any]) -> dict[str, Any]:
        return self.merge_evaluations({split: metrics})

    def merge_evaluations(self, by_split: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Replace the metrics of the splits in ``by_split`` in evaluation.json, keep the others."""
        data = self.evaluation()
        data.update(by_split)
        atomic_write_json(self.evaluation_file, data)
        return data

    # -- append-only logs -------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """Every metric row, values as floats (NaN kept); a torn last line is skipped."""
        if not self.metrics_file.exists():
            return []
        rows: list[dict[str, Any]] = []
        with open(self.metrics_file, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if None in row.values() or row.get("value") in (None, ""):
                    continue  # torn line
                try:
                    rows.append({"step": int(row["step"]),
                                 "epoch": int(row["epoch"]) if row["epoch"] not in ("", None) else None,
                                 "split": row["split"], "name": row["name"],
                                 "value": float(row["value"])})
                except ValueError:
                    continue
        return rows

    def read_events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        events = []
        for line in self.events_file.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # torn line
        return events

    def truncate_logs(self, after_step: int) -> None:
        """Drop metric rows logged after ``after_step`` (work a resume will redo) and torn lines.
        A final evaluation (rows without an epoch) at the resume point itself is redone too."""
        if self.metrics_file.exists():
            kept = [r for r in self.read_metrics() if r["step"] < after_step
                    or (r["step"] == after_step and (r["epoch"] is not None or after_step == 0))]
            lines = [",".join(METRICS_HEADER)]
            lines += [format_metric_row(r["step"], r["epoch"], r["split"], r["name"], r["value"])
                      for r in kept]
            atomic_write_text(self.metrics_file, "\n".join(lines) + "\n")
        if self.events_file.exists():
            events = self.read_events()
            atomic_write_text(self.events_file, "".join(json.dumps(e) + "\n" for e in events))

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_dir(self, tag: str) -> Path | None:
        """The directory of checkpoint ``tag`` (best, last, step-N) if one was completely written."""
        return existing_dir(self.checkpoints_dir / tag)

    def final_checkpoint_dir(self) -> Path | None:
        """The checkpoint a trained model is used from: ``best``, else ``last`` (a run that
        monitored no metric), else None."""
        return self.checkpoint_dir("best") or self.checkpoint_dir("last")

    def save_checkpoint(self, tag: str, fill: Any, *, epoch: int, step: int,
                        metric: float | None = None, extra: dict[str, Any] | None = None,
                        source: Path | None = None) -> CheckpointInfo:
        """Write checkpoint ``tag`` atomically: ``fill(tmp_dir)`` writes the files (or ``source``,
        an existing checkpoint directory, is copied), then checkpoint.json records their sha256."""
        files: dict[str, str] = {}

        def build(tmp: Path) -> None:
            if source is not None:
                for item in source.iterdir():
                    if item.name != "checkpoint.json":
                        (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            else:
                fill(tmp)
            for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
                files[str(file.relative_to(tmp))] = sha256_file(file)
            atomic_write_json(tmp / "checkpoint.json", {
                "tag": tag, "epoch": epoch, "step": step, "metric": metric,
                "created": datetime.now().isoformat(timespec="seconds"), "files": files,
                **(extra or {}),
            })

        target = self.checkpoints_dir / tag
        atomic_write_dir(target, build)
        # run.json keeps the hashes too: a checkpoint directory edited together with its own
        # checkpoint.json still fails verification against the run's record
        self._record_checkpoints(add={tag: {"epoch": epoch, "step": step, "files": files}})
        return CheckpointInfo(tag=tag, path=target, epoch=epoch, step=step, metric=metric,
                              files=files)

    def verified_checkpoint(self, tag: str) -> Path:
        """The checkpoint directory ``tag`` after checking every file against its recorded sha256."""
        path = self.checkpoint_dir(tag)
        if path is None:
            status = self.status  # the rest of this method reads run.json too
            why = f" (the run {status} before saving one)" if status in ("failed", "interrupted") else ""
            hint = "; `hookforge train --resume` continues it" if status == "interrupted" else ""
            raise CheckpointError(f"{self.path} has no '{tag}' checkpoint{why}{hint}")
        meta = verify_checkpoint(path)
        recorded = self.info().get("checkpoints", {}).get(tag)
        if recorded is not None and recorded.get("files") != meta.get("files"):
            changed = sorted(name for name in {*recorded["files"], *meta.get("files", {})}
                             if recorded["files"].get(name) != meta.get("files", {}).get(name))
            raise CheckpointError(f"checkpoint {path}: {', '.join(changed) or 'its file list'} does not "
                                  f"match the sha256 recorded in {self.run_file}")
        return path

    def copy_to(self, target: Path, keep: Callable[[Path], bool] = lambda item: True) -> None:
        """Copy the record into ``target`` with only its best checkpoint (``last`` when there is
        no best), as a champion or a served model needs it; ``keep`` picks the other top-level
        files and directories."""
        target.mkdir(parents=True, exist_ok=True)
        for item in self.path.iterdir():
            if item.name == "checkpoints" or not keep(item):
                continue
            if item.is_dir():
                shutil.copytree(item, target / item.name)
            else:
                shutil.copy2(item, target / item.name)
        for tag in ("best", "last"):
            final = self.checkpoint_dir(tag)
            if final is not None:  # under its tag: the directory may be a crash's .old- copy
                shutil.copytree(final, target / "checkpoints" / tag)
                break

    def prune_checkpoints(self, prefix: str, keep: int) -> None:
        """Keep only the ``keep`` newest checkpoints named ``<prefix><step>``."""
        if not self.checkpoints_dir.is_dir():
            return
        found = sorted((int(p.name[len(prefix):]), p) for p in self.checkpoints_dir.iterdir()
                       if p.name.startswith(prefix) and p.name[len(prefix):].isdigit())
        removed = found[: max(0, len(found) - keep)]
        for _, path in removed:
            shutil.rmtree(path, ignore_errors=True)
        if removed:
            self._record_checkpoints(drop=[path.name for _, path in removed])

    def _record_checkpoints(self, *, add: dict[str, Any] | None = None,
                            drop: tuple[str, ...] | list[str] = ()) -> None:
        """Update run.json's ``checkpoints`` (tag -> epoch, step, file hashes): one read, one
        atomic write."""
        data = self.info() if self.run_file.exists() else {}
        recorded = data.setdefault("checkpoints", {})
        recorded.update(add or {})
        for tag in drop:
            recorded.pop(tag, None)
        atomic_write_json(self.run_file, data)


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check the files of a checkpoint against checkpoint.json; raise CheckpointError if any file
    is missing, truncated or modified. Returns checkpoint.json."""
    manifest = path / "checkpoint.json"
    try:
        meta = read_json(manifest)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete or corrupt: {manifest.name} "
                              f"unreadable ({exc})") from None
    for name, digest in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        if sha256_file(file) != digest:
            raise CheckpointError(f"checkpoint file {file} is corrupt or was modified "
                                  f"(sha256 does not match checkpoint.json)")
    return meta


def format_metric_row(step: int, epoch: int | None, split: str, name: str, value: float) -> str:
    """One metrics.csv line; ``repr`` keeps floats exact, NaN/inf are written as nan/inf."""
    text = repr(float(value)) if not math.isnan(value) else "nan"
    return f"{step},{'' if epoch is None else epoch},{split},{name},{text}"


@lru_cache(maxsize=8)
def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Versions of installed distributions (read from metadata; nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def environment_versions(packages: list[str]) -> dict[str, str]:
    """Versions of installed distributions (read from metadata once per process)."""
    return dict(_versions(tuple(packages)))


def git_commit(cwd: Path | None = None) -> dict[str, Any] | None:
    """The commit of the git work tree the command runs in, and whether it has local changes
    (asked once per process and directory: a search runs many trials from one work tree)."""
    result = _git_commit(str(Path(cwd or ".").resolve()))
    return dict(result) if result else None


@lru_cache(maxsize=16)
def _git_commit(cwd: str) -> dict[str, Any] | None:
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty} if commit else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs; a zombie (exited, not yet reaped by
    its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS...): os.kill's answer stands
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
