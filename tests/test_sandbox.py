"""The sandbox that runs model-written programs: each hostile program is stopped with the
right status, by the OS layer alone as well as with the audit hook, and the parent is never
harmed: it stays responsive, files outside are untouched, no process is left behind."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lemagen.cotnpot import sandbox
from lemagen.cotnpot.sandbox import (
    MADE_FILES,
    Limits,
    Outcome,
    SandboxUnavailable,
    run,
    sized_tmpfs,
)

FAST = Limits(timeout=2.0, cpu=1)  # for programs that are meant to run out of time
ROOMY = Limits(timeout=15.0, cpu=10)  # for programs that finish, even on a loaded machine
# The working directory is a tmpfs of Limits.disk bytes where bwrap has --size (0.7 on); an
# older bwrap binds a host directory, where only the audit hook bounds the files made.
SIZED = shutil.which("bwrap") is not None and sized_tmpfs(str(shutil.which("bwrap")))


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A file and a fake ~/.ssh key outside the sandbox, checked unchanged afterwards. Never
    under the sandbox's own working directory's name (a TMPDIR under /work): there the
    program would see its own directory, not the host's."""
    if not tmp_path.is_relative_to(sandbox.INSIDE_WORKDIR):
        yield from _canary(tmp_path)
        return
    outside = Path(tempfile.mkdtemp(prefix="lemagen-canary-", dir="/tmp"))
    try:
        yield from _canary(outside)
    finally:
        shutil.rmtree(outside)


def _canary(directory: Path) -> Iterator[Path]:
    ssh = directory / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_text("SECRET-KEY\n", encoding="utf-8")
    path = directory / "canary.txt"
    path.write_text("untouched\n", encoding="utf-8")
    yield path
    assert path.read_text(encoding="utf-8") == "untouched\n"
    assert sorted(p.name for p in directory.iterdir()) == ["canary.txt", "home"]
    assert (ssh / "id_ed25519").read_text(encoding="utf-8") == "SECRET-KEY\n"


def leftovers(tag: str) -> list[int]:
    """Processes whose command line carries `tag` (the sandbox's and anything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def run_hostile(program: str, limits: Limits) -> Outcome:
    tag = uuid.uuid4().hex
    started = time.monotonic()
    outcome = run(program, limits, tag=tag)
    assert time.monotonic() - started < limits.timeout + 30  # stopped, not left to run
    assert leftovers(tag) == []
    # The parent is still responsive and can still run programs.
    assert run("print(6 * 7)", ROOMY) == Outcome("ok", "42\n")
    return outcome


def test_a_program_prints_its_answer() -> None:
    program = "from fractions import Fraction\nimport math\nprint(Fraction(3, 4) * 8, math.pi > 3)"
    assert run(program) == Outcome("ok", "6 True\n")


def test_the_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    out = run("import os, sys\nprint(sorted(os.environ), sys.flags.isolated, sys.flags.no_site)")
    assert out.status == "ok"
    names, isolated, no_site = out.stdout.rsplit("]", 1)[0] + "]", *out.stdout.split()[-2:]
    assert "OPENAI_API_KEY" not in names
    assert "HOME" not in names
    assert (isolated, no_site) == ("1", "1")


def test_the_program_sees_an_empty_working_directory_and_no_home() -> None:
    program = "import os\nprint(os.getcwd(), os.listdir('.'), sorted(os.listdir('/')), os.getuid())"
    out = run(program)
    assert out.status == "ok"
    uid = "65534" if os.geteuid() == 0 else str(os.getuid())
    assert out.stdout.split("] ")[0] + "]" == "/work []"
    assert out.stdout.strip().endswith(uid)
    for hidden in ("'home'", "'root'", "'tmp'", "'etc'", "'proc'"):
        assert hidden not in out.stdout


def test_the_program_may_write_in_its_own_directory() -> None:
    program = "open('scratch.txt', 'w').write('12')\nprint(open('scratch.txt').read())"
    assert run(program) == Outcome("ok", "12\n")


HOSTILE = {
    # name: (program, status, what the error says with the audit hook off / on)
    "socket": (
        "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=1)\nprint(1)",
        "error",
        ("Network is unreachable", "Connection refused"),
        "sandbox: import _socket is not allowed",
    ),
    "read-ssh": (
        "print(open('HOME/.ssh/id_ed25519').read())\nprint(open('/root/.ssh/id_rsa').read())",
        "error",
        ("No such file or directory",),
        "No such file or directory",
    ),
    "write-outside": (
        "open('CANARY', 'w').write('pwned')\nprint(1)",
        "error",
        ("No such file or directory",),
        "sandbox: writing",
    ),
    "write-root": (
        "open('/python/pwned', 'w').write('x')\nprint(1)",
        "error",
        ("Read-only file system", "Permission denied"),
        "sandbox: writing",
    ),
    "fork": ("import os\nprint(os.fork())", "error", ("Errno 11",), "os.fork is not allowed"),
    "subprocess": (
        "import subprocess\nprint(subprocess.run(['/usr/bin/id'], capture_output=True))",
        "error",
        ("Errno 11", "No such file"),
        "is not allowed",
    ),
    "thread": (
        "import threading\nthreading.Thread(target=print).start()\nprint(1)",
        "error",
        ("can't start new thread",),
        "can't start new thread",
    ),
    "allocate-10GB": ("x = bytearray(10 * 2**30)\nprint(len(x))", "error", ("MemoryError",), ""),
    "print-1GB": (
        "import sys\nfor _ in range(2**14):\n    sys.stdout.write('x' * 2**16)",
        "error",
        ("printed more than 65536 bytes",),
        "printed more than",
    ),
    "big-file": (
        "open('big', 'wb').write(b'x' * 2**24)\nprint(1)",
        "error",
        ("File too large",),
        "File too large",
    ),
    "fill-disk": (
        "for i in range(64):\n    open(f'f{i}', 'wb').write(b'x' * 2**20)\nprint(1)",
        "error",
        ("No space left on device",),
        "No space left on device" if SIZED else "sandbox: more than 16 files made",
    ),
    "loop-forever": ("while True:\n    pass", "timeout", ("",), ""),
    "sleep-forever": ("import time\ntime.sleep(3600)", "timeout", ("wall clock",), "wall clock"),
}


@pytest.mark.parametrize("audit_hook", [False, True], ids=["os-layer-only", "with-audit-hook"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_stopped(name: str, audit_hook: bool, canary: Path) -> None:
    if name == "fill-disk" and not audit_hook and not SIZED:
        pytest.skip("this bwrap has no --size: the audit hook alone bounds the disk")
    program, status, os_says, hook_says = HOSTILE[name]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.05)
        port = listener.getsockname()[1]
        program = (
            program.replace("PORT", str(port))
            .replace("HOME", str(canary.parent / "home"))
            .replace("CANARY", str(canary))
        )
        outcome = run_hostile(program, Limits(timeout=4.0, cpu=1, audit_hook=audit_hook))
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing reached the parent's network
    assert outcome.status == status, outcome
    assert outcome.stdout in ("", "x" * len(outcome.stdout))
    assert outcome.detail is not None
    if audit_hook:
        assert hook_says in outcome.detail
    else:
        assert any(s in outcome.detail for s in os_says), outcome.detail
    assert "SECRET-KEY" not in outcome.stdout + outcome.detail


FILL = """
written = 0
try:
    for i in range(FILES):
        with open(f"f{i}", "wb") as f:
            for _ in range(CHUNKS):
                f.write(b"x" * 65536)
                f.flush()
                written += 65536
except OSError as e:
    print(written, e.strerror or e)
else:
    print(written, "no error")
"""


@pytest.mark.skipif(not SIZED, reason="this bwrap has no --size: the audit hook bounds files")
@pytest.mark.parametrize("audit_hook", [False, True], ids=["os-layer-only", "with-audit-hook"])
@pytest.mark.parametrize(
    ("files", "chunks", "file_size"),
    [(64, 16, 1 << 20), (1, 64 * 16, 64 << 20)],
    ids=["64 files of 1 MiB", "one file of 64 MiB"],
)
def test_the_working_directory_holds_its_size_and_no_more(
    files: int, chunks: int, file_size: int, audit_hook: bool
) -> None:
    """Finding 11: `crosscheck --workers 2` grew TMPDIR by 5 GB. Whatever the program writes
    (many files, or one file as big as the file-size limit lets it), it gets Limits.disk
    bytes, in a tmpfs that is never the host's disk."""
    limits = Limits(timeout=30.0, cpu=20, file_size=file_size, audit_hook=audit_hook)
    program = FILL.replace("FILES", str(files)).replace("CHUNKS", str(chunks))
    outcome = run(program, limits)
    assert outcome.status == "ok", outcome
    written, why = outcome.stdout.split(" ", 1)
    assert why == "No space left on device\n"
    assert limits.disk - (1 << 20) <= int(written) <= limits.disk


def test_a_program_makes_a_bounded_number_of_files() -> None:
    """Empty files and directories take no tmpfs space but memory each: the audit hook lets
    a program make MADE_FILES of them (on a bound host directory, Limits.disk // file_size)."""
    made = MADE_FILES if SIZED else Limits().disk // Limits().file_size
    program = (
        "import os\nfor i in range(5000):\n    os.mkdir(f'd{i}') if i % 2 else open(f'{i}', 'w')"
    )
    outcome = run(program, ROOMY)
    assert (outcome.status, outcome.detail) == (
        "error",
        f"exit 1: PermissionError: sandbox: more than {made} files made",
    )
    just = f"for i in range({made}):\n    open(f'f{{i}}', 'w')\nprint(1)"
    assert run(just, ROOMY).stdout == "1\n"  # as many as that is fine


def test_a_bwrap_without_size_binds_a_directory_the_hook_bounds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The way without --size, taken here on purpose: a host directory under TMPDIR, where
    the audit hook lets the program make Limits.disk // file_size files of file_size bytes at
    most; the directory is gone afterwards."""
    monkeypatch.setattr(sandbox, "sized_tmpfs", lambda path: False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        program = FILL.replace("FILES", "64").replace("CHUNKS", "16")
        outcome = run(program, Limits(timeout=30.0, cpu=20))
    finally:
        tempfile.tempdir = None
    assert outcome.status == "ok", outcome
    assert outcome.stdout == f"{16 << 20} sandbox: more than 16 files made\n"
    assert list(tmp_path.iterdir()) == []


def test_a_program_cannot_outlive_a_kill_with_a_child() -> None:
    # Even a program that somehow had a second process: the PID namespace ends with the
    # sandbox. Simulated with the CPU limit: the whole group is gone after the wall clock.
    tag = uuid.uuid4().hex
    out = run("import time\nwhile True: time.sleep(0.01)", FAST, tag=tag)
    assert out.status == "timeout"
    assert leftovers(tag) == []


def test_many_runs_at_once_do_not_interfere() -> None:
    results: list[Outcome] = []

    def one(i: int) -> None:
        results.append(run(f"print({i} * 2)", ROOMY))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r.stdout) for r in results) == [0, 2, 4, 6, 8, 10]


def test_without_bwrap_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap"):
        run("print(1)")
