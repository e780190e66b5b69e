"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of
one. Append-only logs (metrics.csv, events.jsonl) are appended instead; a torn last line left by a
killed process is dropped when the record is read or resumed."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hookforge.errors import UsageError


def _unique_sibling(path: Path, prefix: str) -> Path:
    return path.parent / f"{prefix}{path.name}.{secrets.token_hex(6)}.tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    # Not tempfile.mkstemp: it creates the file 0600 whatever the umask, and the rename keeps that,
    # leaving run records that a teammate, a tracking server or a serving container cannot read.
    while True:
        tmp = _unique_sibling(path, ".")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileNotFoundError:  # creating the folder only then: a run writes a dozen files
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        except FileExistsError:  # another writer drew the same name
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any, *, compact: bool = False) -> None:
    """``compact`` for large data: json's C encoder runs only without ``indent`` (the indenting
    one is pure Python, ~0.15 s per 200k-element list)."""
    from hookforge.types import _json_default

    text = json.dumps(data, indent=None if compact else 2, default=_json_default, allow_nan=True)
    atomic_write_text(path, text + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Build a directory with ``fill(tmp_dir)`` then swap it in for ``target``.

    The old directory is renamed to ``.old-<name>`` before the new one takes its place, so a crash
    between the two renames leaves a complete copy that :func:`existing_dir` finds.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:  # not tempfile.mkdtemp, whose 0700 the rename would keep (see atomic_write_bytes)
        tmp = _unique_sibling(target, ".tmp-")
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        break
    old = target.parent / f".old-{target.name}"
    try:
        fill(tmp)
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def existing_dir(target: Path) -> Path | None:
    """``target`` if it exists, else the ``.old-`` copy a crash mid-swap left, else None."""
    if target.is_dir():
        return target
    old = target.parent / f".old-{target.name}"
    return old if old.is_dir() else None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and its parents) if needed and make sure files can be written in it;
    anything else is a UsageError naming ``what``, the path and the reason (a file in the way,
    a read-only file system, /proc...). Checked by writing and removing a probe file, since the
    permission bits say nothing to root or about a read-only mount."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = _unique_sibling(path / "probe", ".")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise UsageError(f"{what} {path}: a file is in the way (a directory is needed)") from None
    except NotADirectoryError:
        raise UsageError(f"{what} {path}: a part of the path is a file, not a directory") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({_os_reason(exc)})") from None
    return path


def check_writable_parent(path: Path, what: str) -> None:
    """``path`` is a file to write: its folder must be writable and ``path`` not a directory."""
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a directory (a file name is needed)")
    check_writable_dir(path.parent if str(path.parent) else Path("."), what)


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system fault: the path, the OS's reason."""
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"file-system error at{where}: {_os_reason(exc)}" if where else \
        f"file-system error: {_os_reason(exc)}"
