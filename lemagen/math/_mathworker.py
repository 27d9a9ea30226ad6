"""Worker process for symbolic answer checks: `python -m lemagen.math._mathworker`.

Reads one JSON array `[gold, pred, timeout]` per line on stdin and answers one JSON line per
request: `{"equal": bool, "gold_parsed": bool}`, or `{"timeout": true}`. It runs Math-Verify
with its own signal-based timeouts turned off (a signal cannot interrupt a long C-level sympy
call; a kill can).

Where the OS can fork, the checks run in a child forked from this warm process (Math-Verify and
sympy already imported): when a check runs out of time the child is killed and a new one forked
in milliseconds, so a timed-out check costs its limit and not a restart of the imports. Without
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

    def ask(self, gold: str, pred: str, timeout: float) -> dict[str, object] | None:
        try:
            self.requests.write(json.dumps([gold, pred]) + "\n")
            self.requests.flush()
        except BrokenPipeError:
            return None
        ready, _, _ = select.select([self.replies], [], [], timeout)
        line = self.replies.readline() if ready else ""
        return json.loads(line) if line else None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.requests.close()
        self.replies.close()


def main() -> None:
    logging.disable(logging.WARNING)  # Math-Verify warns on every call that its timeout is off
    from math_verify import parse, verify

    _check(parse, verify, "\\frac{1}{2}", "0.5")  # warm the parser up once; children inherit it
    can_fork = hasattr(os, "fork")
    child = _Child(parse, verify) if can_fork else None
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        gold_text, pred_text, timeout = json.loads(line)
        if child is None:
            reply: dict[str, object] | None = _check(parse, verify, gold_text, pred_text)
        else:
            reply = child.ask(gold_text, pred_text, timeout)
            if reply is None:  # out of time, or the child died (out of memory): a fresh one
                child.kill()
                child = _Child(parse, verify)
                reply = {"timeout": True}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    if child is not None:
        child.kill()
    # Skip the interpreter's teardown of sympy and Math-Verify (most of a second): the grader
    # waits for this process to end when a run finishes.
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
