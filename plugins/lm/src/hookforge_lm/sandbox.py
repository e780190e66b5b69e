"""Running code that a model wrote, in a separate, limited process (never in the training one).

Each call starts a fresh Python (``-I -S``: no user site, no ``PYTHON*`` variables, no site
packages) with an empty environment, in a new temporary working directory that is removed
afterwards, under resource limits set before the program starts (address space, CPU seconds,
file size, open files, no new processes) and a wall-clock time limit that kills its whole
process group. Inside, an audit hook (PEP 578) installed before the program runs refuses, with
PermissionError, what a verifier never needs: sockets, new processes, ``ctypes``, changing
directory, and writing, deleting or renaming anything outside the working directory. Where the
kernel allows unprivileged user namespaces, the process also runs in a network namespace of its
own (``unshare -rn``), so even a way round the audit hook finds no network.

The program's stdout is the answer; a result records whether it timed out or crashed, so a
verifier can score that 0 and go on.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Installed in the child before the program: the working directory is the only place it may
# change, and the events below are refused outright. Audit hooks cannot be removed once added.
_GUARD = r'''
import os, resource, sys
_MB = 1 << 20
for _what, _value in ((resource.RLIMIT_AS, {memory_mb} * _MB), (resource.RLIMIT_CPU, {cpu_s}),
                      (resource.RLIMIT_FSIZE, {file_mb} * _MB), (resource.RLIMIT_NOFILE, {open_files}),
                      (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_CORE, 0)):
    try:
        resource.setrlimit(_what, (_value, _value))
    except (ValueError, OSError):  # NPROC cannot be lowered for root: the audit hook still refuses
        pass
_root = os.path.realpath(os.getcwd())
_refused = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
            "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
            "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.cdata",
            "os.chdir", "os.chroot", "sys.remote_exec", "shutil.chown", "resource.setrlimit",
            "resource.prlimit"}
_changes = {"os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.replace", "os.chmod",
            "os.chown", "os.symlink", "os.link", "os.truncate", "os.utime", "shutil.rmtree",
            "shutil.copyfile", "shutil.move"}
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_realpath, _fspath, _isinstance, _int, _str = os.path.realpath, os.fspath, isinstance, int, str

def _inside(path):
    if _isinstance(path, _int):  # an already open descriptor
        return True
    try:
        full = _realpath(_fspath(path))
    except (TypeError, ValueError):
        return False
    return full == _root or full.startswith(_root + os.sep)

def _guard(event, args):
    if event in _refused or event.startswith("socket."):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writes = (_isinstance(mode, _str) and any(c in mode for c in "wax+")) or \
            (_isinstance(flags, _int) and flags & _WRITE)
        if writes and not _inside(path):
            raise PermissionError(f"sandbox: writing {path} outside the working directory")
    elif event in _changes:
        for path in args:
            if _isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
                raise PermissionError(f"sandbox: {event} on {path} outside the working directory")
    elif event == "import" and args[0] in ("ctypes", "_ctypes", "_posixsubprocess"):
        raise PermissionError(f"sandbox: importing {args[0]} is not allowed")

sys.addaudithook(_guard)
del _guard
_program = open("program.py").read()
exec(compile(_program, "program.py", "exec"), {"__name__": "__main__"})
'''


@dataclass(frozen=True)
class Limits:
    """What a sandboxed program may use."""

    wall_s: float = 2.0  # killed after this many seconds
    cpu_s: int = 2
    memory_mb: int = 256  # address space
    file_mb: int = 4  # the largest file it may write
    open_files: int = 32


@dataclass
class Result:
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def why(self) -> str:
        """What went wrong, in one line (for the per-sample record)."""
        if self.timed_out:
            return "timed out"
        if self.returncode != 0:
            last = (self.stderr.strip().splitlines() or [f"exit code {self.returncode}"])[-1]
            return last[:200]
        return ""


@functools.cache
def _network_namespace() -> list[str]:
    """``unshare -rn`` where the kernel grants unprivileged user namespaces, else nothing."""
    tool = shutil.which("unshare")
    if tool is None or not sys.platform.startswith("linux"):
        return []
    try:
        done = subprocess.run([tool, "-rn", "true"], capture_output=True, timeout=5, env={})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [tool, "-rn", "--"] if done.returncode == 0 else []


def run_python(program: str, stdin: str = "", limits: Limits | None = None) -> Result:
    """Run ``program`` (Python source) in the sandbox described in the module docstring."""
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="hookforge-sandbox-") as tmp:
        work = Path(tmp)
        (work / "program.py").write_text(program)
        guard = _GUARD.replace("{memory_mb}", str(limits.memory_mb)).replace(
            "{cpu_s}", str(limits.cpu_s)).replace("{file_mb}", str(limits.file_mb)).replace(
            "{open_files}", str(limits.open_files))
        command = [*_network_namespace(), sys.executable, "-I", "-S", "-c", guard]
        try:
            process = subprocess.Popen(command, cwd=work, env={}, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True, text=True)
        except OSError as exc:
            return Result("", f"sandbox: cannot start ({exc})", None)
        try:
            stdout, stderr = process.communicate(stdin, timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.communicate()
            return Result("", "", None, timed_out=True)
        # a CPU-limit kill (SIGXCPU) counts as a timeout too
        timed_out = process.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
        return Result(stdout[-65536:], stderr[-4096:], process.returncode, timed_out)
