"""Run a model-written Python program in a sandbox and read what it printed.

The boundary is bubblewrap (`bwrap`, the sandbox Flatpak uses; Debian package `bubblewrap`):
the program runs in new network, PID, IPC, UTS and mount namespaces (and a user namespace
when lemagen is not root), on an empty root file system holding only the interpreter and
`/usr` read-only and an empty working directory, the only writable place: a tmpfs of a fixed
size (bwrap --size), so that no program fills the host's disk. Inside, before
the program runs (`_child.py`), the process drops root to `nobody` and lowers its resource
limits for good: CPU time, address space, file size, open files, processes (one: no fork, no
threads), no core dumps; an audit hook then refuses networking, processes, ctypes and writes
outside the working directory, as a second layer. Here, outside, the environment is empty,
stdout is read up to a cap, and the whole process group is killed at a wall-clock limit.

What is and is not guaranteed is in docs/cotnpot.md (`lemagen crosscheck`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from lemagen.errors import LemagenError

NOBODY = 65534
INSIDE_PYTHON = "/python"  # where the interpreter's prefix is mounted inside
INSIDE_WORKDIR = "/work"
READY = b"\x00lemagen-sandbox-ready\n"  # what `_child.py` writes to stderr before the program

Status = Literal["ok", "error", "timeout"]
MADE_FILES = 1024  # files and directories a program may make in its tmpfs (the audit hook)


class SandboxUnavailable(LemagenError):
    """bwrap is missing or cannot create the sandbox here (exit 1, one line)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 5.0  # wall clock, seconds: the process group is killed after it
    cpu: int = 5  # CPU seconds (RLIMIT_CPU)
    memory: int = 1 << 30  # address space, bytes (RLIMIT_AS)
    output: int = 64 << 10  # stdout bytes read; more is an error
    file_size: int = 1 << 20  # largest file the program may write (RLIMIT_FSIZE)
    files: int = 64  # open file descriptors (RLIMIT_NOFILE)
    # Bytes the program may write in all: its working directory is a tmpfs of this size (in
    # memory, never the host's disk), where the audit hook lets it make MADE_FILES files. A
    # bwrap without --size (before 0.7, or setuid) binds a host directory instead, where the
    # hook lets it make at most disk // file_size files.
    disk: int = 16 << 20
    audit_hook: bool = True  # the in-interpreter second layer (tests turn it off)


@dataclass(frozen=True)
class Outcome:
    """How a program ended: `ok` (exit 0), `error` (any other exit, or too much output) or
    `timeout` (wall clock or CPU limit); what it printed; one line on why."""

    status: Status
    stdout: str
    detail: str | None = None


def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "crosscheck runs programs in a bubblewrap sandbox, and bwrap is not installed "
            "(Debian/Ubuntu: apt-get install bubblewrap); see docs/cotnpot.md"
        )
    return path


@functools.cache
def sized_tmpfs(path: str) -> bool:
    """Whether the bwrap at `path` mounts a tmpfs of a given size (`--size`: bubblewrap 0.7;
    refused by a setuid bwrap run by another user than root)."""
    try:
        done = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=60, env={}, check=False
        )
        setuid = os.stat(path).st_mode & stat.S_ISUID and os.getuid() != 0
    except (OSError, subprocess.SubprocessError):
        return False
    return "--size" in done.stdout + done.stderr and not setuid


def _interpreter() -> tuple[Path, str]:
    """The interpreter's prefix on this machine and its executable's path inside."""
    prefix = Path(sys.base_prefix).resolve()
    exe = Path(os.path.realpath(sys.executable))
    try:
        rel = exe.relative_to(prefix)
    except ValueError:
        raise SandboxUnavailable(
            f"the Python interpreter {exe} is not under its prefix {prefix}"
        ) from None
    return prefix, f"{INSIDE_PYTHON}/{rel}"


def _system_mounts() -> list[str]:
    """`/usr` read-only, and `/lib`, `/lib64`, `/bin` as they are here (links or dirs)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/lib", "/lib64", "/lib32", "/bin"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def command(workdir: str | None, limits: Limits, *, tag: str = "") -> list[str]:
    """The bwrap command line that runs `_child.py` (which reads the program on stdin), in a
    working directory that is a tmpfs of `limits.disk` bytes (`workdir` None), or `workdir`
    bound (a bwrap without --size)."""
    root = os.geteuid() == 0
    prefix, python = _interpreter()
    config = {
        "uid": NOBODY if root else None,
        "gid": NOBODY if root else None,
        "cpu": max(1, int(limits.cpu)),
        "memory": limits.memory,
        "file_size": limits.file_size,
        "files": limits.files,
        "audit_hook": limits.audit_hook,
        "workdir": INSIDE_WORKDIR,
        # Files and directories the audit hook lets the program make: a tmpfs's size does not
        # count empty ones; a bound host directory counts on the hook alone.
        "created": MADE_FILES if workdir is None else max(1, limits.disk // limits.file_size),
        "tag": tag,  # in the command line, so tests can find any process left behind
    }
    args = [bwrap(), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if root:  # real root: keep only what `_child.py` needs to become nobody
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:  # anyone else: a user namespace, without capabilities outside it
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--tmpfs", "/", *_system_mounts(), "--ro-bind", str(prefix), INSIDE_PYTHON]
    if workdir is None:  # writable by the program (nobody, when run as root), and no more
        mode = "0777" if root else "0700"
        args += ["--perms", mode, "--size", str(limits.disk), "--tmpfs", INSIDE_WORKDIR]
    else:
        args += ["--bind", workdir, INSIDE_WORKDIR]
    args += ["--remount-ro", "/"]
    child = resources.files("lemagen.cotnpot").joinpath("_child.py").read_text(encoding="utf-8")
    return [*args, "--", python, "-I", "-S", "-B", "-c", child, json.dumps(config)]


def run(program: str, limits: Limits | None = None, *, tag: str = "") -> Outcome:
    """Run `program` in a fresh sandbox; never raises for anything the program does. When it
    returns, every process of the sandbox is gone and its working directory removed."""
    limits = limits or Limits()
    workdir = None if sized_tmpfs(bwrap()) else tempfile.mkdtemp(prefix="lemagen-pot-")
    info_r, info_w = os.pipe()  # bwrap writes {"child-pid": N} here once the sandbox exists
    try:
        if workdir is not None:
            os.chmod(workdir, 0o700)
            if os.geteuid() == 0:
                os.chown(workdir, NOBODY, NOBODY)
        args = command(workdir, limits, tag=tag)
        args[1:1] = ["--info-fd", str(info_w)]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            cwd=workdir or "/",
            start_new_session=True,
            close_fds=True,
            pass_fds=(info_w,),
        )
        os.close(info_w)
        info_w = -1
        try:
            return _communicate(proc, program.encode("utf-8"), limits)
        finally:
            _kill(proc, info_r)
    finally:
        os.close(info_r)
        if info_w >= 0:
            os.close(info_w)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _sandbox_pid(proc: subprocess.Popen[bytes], info: int) -> int | None:
    """The PID (here) of the sandbox's first process, the init of its PID namespace, while it
    is still bwrap's child."""
    os.set_blocking(info, False)
    try:
        data = os.read(info, 4096)
    except BlockingIOError:
        return None
    try:
        pid = int(json.loads(data.decode())["child-pid"])
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ValueError, KeyError, TypeError, OSError):
        return None
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    return pid if parent == proc.pid else None


def _kill(proc: subprocess.Popen[bytes], info: int) -> None:
    """Kill the sandbox and wait until all its processes are gone: SIGKILL to the init of
    its PID namespace takes every process in it (the kernel waits for them all before that
    init is reaped, by bwrap, which then exits); then bwrap's own process group."""
    if proc.poll() is None:
        pid = _sandbox_pid(proc, info)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _communicate(proc: subprocess.Popen[bytes], program: bytes, limits: Limits) -> Outcome:
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    deadline = time.monotonic() + limits.timeout
    out, err = bytearray(), bytearray()
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    sel.register(proc.stdin, selectors.EVENT_WRITE)
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    todo = memoryview(program)
    ready: bool | None = False
    try:
        while len(sel.get_map()):
            left = deadline - time.monotonic()
            if left <= 0:
                return _timed_out(limits, out)
            for key, _ in sel.select(left):
                if key.fileobj is proc.stdin:
                    try:
                        sent = os.write(proc.stdin.fileno(), todo[:65536])
                    except (BrokenPipeError, BlockingIOError):
                        sent = len(todo)
                    todo = todo[sent:]
                    if not todo:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                fd = key.fileobj.fileno()  # type: ignore[union-attr]
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk
                    if len(out) > limits.output:
                        return Outcome("error", "", f"printed more than {limits.output} bytes")
                elif ready is False:
                    err += chunk
                    if err[: len(READY)] == READY:
                        ready, err = True, err[len(READY) :]
                    elif len(err) >= len(READY) and not READY.startswith(bytes(err)):
                        ready = None  # bwrap or the set-up failed: not the program
                else:
                    err = (err + chunk)[-4096:]  # the end of a traceback is what tells
    finally:
        sel.close()
    try:
        code = proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return _timed_out(limits, out)
    if ready is not True and code != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        raise SandboxUnavailable(f"cannot start the sandbox (exit {code}): {lines[-1]}")
    return _ended(code, bytes(out), bytes(err), limits)


def _timed_out(limits: Limits, out: bytearray) -> Outcome:
    text = out.decode("utf-8", "replace")
    return Outcome("timeout", text, f"killed after {limits.timeout:g} s (wall clock)")


# bwrap reports a child killed by a signal as exit status 128 + the signal number.
_CPU_SIGNALS = {128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGXCPU, -signal.SIGKILL}


def _ended(code: int, out: bytes, err: bytes, limits: Limits) -> Outcome:
    text = out.decode("utf-8", "replace")
    if code == 0:
        return Outcome("ok", text)
    if code in _CPU_SIGNALS:
        return Outcome("timeout", text, f"stopped at the CPU limit ({limits.cpu} s)")
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    why = lines[-1].strip() if lines else "no message"
    return Outcome("error", text, f"exit {code}: {why}"[:300])
