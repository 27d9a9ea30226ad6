"""Worker process for symbolic answer checks: `python -m lemagen.math._mathworker`.

Reads one JSON array `[id, gold, pred, timeout]` per line on stdin and answers one JSON line per
request, with its id: `{"id": id, "equal": bool, "gold_parsed": bool}`, or `{"id": id,
"timeout": true}`. Replies come as checks end, not in request order. It runs Math-Verify
with its own signal-based timeouts turned off (a signal cannot interrupt a long C-level sympy
call; a kill can).

Where the OS can fork, the checks run in children forked from this warm process (Math-Verify and
sympy already imported), as many at once as the first argument says (`--workers`): when a check
runs out of time its child is killed and a new one forked in milliseconds, so a timed-out check
costs its limit and not a restart of the imports. Without
fork, checks run here and the grader kills and restarts this process on a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

Fn = Callable[..., Any]


def _check(parse: Fn, verify: Fn, gold_text: str, pred_text: str) -> dict[str, object]:
    try:
        gold = list(parse(f"${gold_text}$", parsing_timeout=None))
        pred = list(parse(f"${pred_text}$", parsing_timeout=None))
        equal = bool(gold and pred and verify(gold, pred, timeout_seconds=None))
        return {"equal": equal, "gold_parsed": bool(gold)}
    except Exception as exc:  # noqa: BLE001 - any sympy failure is an inequality, reported
        return {"equal": False, "gold_parsed": True, "error": f"{type(exc).__name__}: {exc}"}


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this child when the worker dies, however it dies (a
    check stuck in C code cannot notice by itself)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Child:
    """A forked checker: requests in on one pipe, replies out on another."""

    def __init__(self, parse: Fn, verify: Fn) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve until the pipe closes
            _die_with_parent()
            os.close(req_w)
            os.close(rep_r)
            requests = os.fdopen(req_r, "r")
            replies = os.fdopen(rep_w, "w")
            for line in requests:
                gold_text, pred_text = json.loads(line)
                replies.write(json.dumps(_check(parse, verify, gold_text, pred_text)) + "\n")
                replies.flush()
            os._exit(0)
        os.close(req_r)
        os.close(rep_w)
        self.pid = pid
        self.requests: IO[str] = os.fdopen(req_w, "w")
        self.replies: IO[str] = os.fdopen(rep_r, "r")

    def send(self, gold: str, pred: str) -> bool:
        """Hand the child one check; False if it is gone."""
        try:
            self.requests.write(json.dumps([gold, pred]) + "\n")
            self.requests.flush()
        except BrokenPipeError:
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.requests.close()
        self.replies.close()


class _Lines:
    """Lines from a file descriptor, read without Python's buffering so `select` tells the
    truth about what is waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.closed = False

    def read(self) -> list[bytes]:
        """The complete lines that arrived (call when `select` says the fd is readable)."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.closed = True
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines


def _serve_pool(parse: Fn, verify: Fn, idle: list[_Child], out: IO[str]) -> None:
    """Requests `[id, gold, pred, timeout]` from stdin, checked by the forked children at
    once; each reply (with its id) as soon as its check ends. A check past its limit has its
    child killed and replaced."""
    busy: dict[int, tuple[_Child, object, float]] = {}  # reply fd -> child, id, deadline
    waiting: deque[list[Any]] = deque()
    stdin = _Lines(sys.stdin.fileno())

    def answer(request_id: object, reply: dict[str, object]) -> None:
        out.write(json.dumps({"id": request_id, **reply}) + "\n")

    while not stdin.closed or busy or waiting:
        while waiting and idle:
            request_id, gold_text, pred_text, timeout = waiting.popleft()
            child = idle.pop()
            if child.send(gold_text, pred_text):
                busy[child.replies.fileno()] = (child, request_id, time.monotonic() + timeout)
            else:  # the child died between checks: a fresh one, and the check again
                child.kill()
                idle.append(_Child(parse, verify))
                waiting.appendleft([request_id, gold_text, pred_text, timeout])
        out.flush()
        fds = list(busy) + ([] if stdin.closed else [stdin.fd])
        now = time.monotonic()
        wait = max(0.0, min(d for _, _, d in busy.values()) - now) if busy else None
        ready, _, _ = select.select(fds, [], [], wait)
        for fd in ready:
            if fd == stdin.fd:
                waiting.extend(json.loads(line) for line in stdin.read() if line.strip())
                continue
            child, request_id, _ = busy.pop(fd)
            line = child.replies.readline()
            if line:
                answer(request_id, json.loads(line))
                idle.append(child)
            else:  # the child died (out of memory): a fresh one
                child.kill()
                idle.append(_Child(parse, verify))
                answer(request_id, {"timeout": True})
        now = time.monotonic()
        for fd, (child, request_id, deadline) in list(busy.items()):
            if now >= deadline:
                del busy[fd]
                child.kill()
                idle.append(_Child(parse, verify))
                answer(request_id, {"timeout": True})
    out.flush()
    for child in idle:
        child.kill()


def main() -> None:
    logging.disable(logging.WARNING)  # Math-Verify warns on every call that its timeout is off
    from math_verify import parse, verify

    _check(parse, verify, "\\frac{1}{2}", "0.5")  # warm the parser up once; children inherit it
    size = max(1, int(sys.argv[1])) if len(sys.argv) > 1 else 1
    children = [_Child(parse, verify) for _ in range(size)] if hasattr(os, "fork") else []
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    if children:
        _serve_pool(parse, verify, children, out)
    else:
        for line in sys.stdin:  # no fork: one check at a time, here; a timeout restarts us
            request_id, gold_text, pred_text, _ = json.loads(line)
            out.write(json.dumps({"id": request_id, **_check(parse, verify, gold_text, pred_text)}))
            out.write("\n")
            out.flush()
    # Skip the interpreter's teardown of sympy and Math-Verify (most of a second): the grader
    # waits for this process to end when a run finishes. The pool's children are gone by now.
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
