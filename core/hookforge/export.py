"""Exports: the chosen results of several runs in one directory, with a manifest to trust them by.

For each run, ``export`` copies its best checkpoint (``last`` where there is no best; the
tokenizer and any merged model inside it come along), run.json, its resolved config,
evaluation.json and dataset.json, into ``<target>/<name>/`` (laid out like a run directory, so
``Run.open`` reads it), then writes ``manifest.json``: where each part came from
and the sha256 of every file. :func:`verify` recomputes the hashes and refuses a directory whose
files changed, went missing or were added: :func:`load_model` verifies before it loads.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from hookforge.errors import CheckpointError, UsageError

MANIFEST = "manifest.json"
MARK = "hookforge export"
COPIED = ("run.json", "config.yaml", "evaluation.json", "dataset.json", "labels.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export(sources: dict[str, Path], target: Path) -> Path:
    """Copy each run's results into ``target/<name>`` and write the manifest (see the module
    docstring); ``target`` must be new, empty, or an earlier export."""
    from hookforge.fileio import atomic_write_dir, atomic_write_json, read_json
    from hookforge.record import RunRecord

    target = Path(target)
    if target.exists() and any(target.iterdir()):
        manifest = target / MANIFEST
        if not manifest.is_file() or (read_json(manifest) or {}).get("written_by") != MARK:
            raise UsageError(f"export: {target} holds files hookforge did not export; choose a new "
                             f"or empty directory (nothing was touched)")
    parts: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        for name, run_dir in sources.items():
            record = RunRecord.open(run_dir)
            out = tmp / name
            out.mkdir(parents=True)
            tag = "best" if (run_dir / "checkpoints" / "best").is_dir() else "last"
            checkpoint = run_dir / "checkpoints" / tag
            if checkpoint.is_dir():
                # where a run keeps it: the exported part opens like a run (Run.open)
                shutil.copytree(checkpoint, out / "checkpoints" / tag, symlinks=False)
            for file in COPIED:
                if (run_dir / file).is_file():
                    shutil.copy2(run_dir / file, out / file)
            info = record.info()
            parts[name] = {"run_dir": str(Path(run_dir).resolve()), "checkpoint": tag,
                           "status": info.get("status"), "name": info.get("name")}
        files = {str(p.relative_to(tmp)): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        atomic_write_json(tmp / MANIFEST, {
            "written_by": MARK, "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "runs": parts, "files": files})

    atomic_write_dir(target, fill)
    return target / MANIFEST


def verify(directory: str | Path) -> dict[str, Any]:
    """The manifest of an export whose files are exactly those it lists, unchanged; else a
    CheckpointError naming the first file that differs."""
    from hookforge.fileio import read_json

    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}: not a hookforge export")
    manifest = read_json(manifest_path)
    listed = manifest.get("files") or {}
    present = {str(p.relative_to(directory)) for p in directory.rglob("*")
               if p.is_file() and p.name != MANIFEST}
    for name in sorted(set(listed) - present):
        raise CheckpointError(f"{directory}: {name} is listed in the manifest but missing")
    for name in sorted(present - set(listed)):
        raise CheckpointError(f"{directory}: {name} is not in the manifest (added after export)")
    for name, expected in sorted(listed.items()):
        if sha256(directory / name) != expected:
            raise CheckpointError(f"{directory}: {name} changed since export (sha256 differs)")
    return manifest


def load_model(directory: str | Path, name: str) -> Any:
    """The model exported as ``name``, after :func:`verify`: rebuilt from the exported config
    and checkpoint as ``Run.load_model`` does."""
    from hookforge.run import Run

    manifest = verify(directory)
    if name not in manifest["runs"]:
        raise UsageError(f"export {directory} has no '{name}'; it has: {', '.join(manifest['runs'])}")
    return Run.open(Path(directory) / name).load_model()
