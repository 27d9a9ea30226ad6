"""Compare an extracted answer with the gold answer: (gold, pred) -> verdict.

GSM8K answers are compared as exact rationals. MATH answers are compared by symbolic equivalence
with Math-Verify (gold first, prediction second), after a cheap exact-text fast path. Every
symbolic check runs in a worker process under a wall-clock limit enforced by killing the worker,
so it is safe from any thread and a pathological answer costs at most `timeout` seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

import msgspec

from lemagen._version import __version__
from lemagen.math import answers
from lemagen.terms import Verdict

# What decides a verdict, hashed by `grader_digest`: the modules of lemagen.math that pick the
# text graded (`thinking.split_thinking`, `answers.cut_run_on`), extract the answer (`answers`)
# and compare it (here, and `_mathworker` in the checker process), and the libraries the
# symbolic check runs on. Every module of lemagen.math these import is listed too
# (tests/test_resume.py checks it).
GRADING_MODULES = ("_mathworker.py", "answers.py", "grading.py", "thinking.py")
CHECKER_LIBRARIES = ("math-verify", "latex2sympy2_extended", "sympy", "antlr4-python3-runtime")

DEFAULT_CHECK_TIMEOUT = 3.0
_STARTUP_TIMEOUT = 60.0
_GRACE = 5.0  # beyond the limit, before a worker that does not answer is replaced


class Grade(msgspec.Struct, frozen=True):
    pred: str | None
    verdict: Verdict
    extracted_by: answers.Method | None = None  # how `pred` was found (answers.Extraction)


@cache  # reading a package's version scans the installed distributions
def checker_info(task: str) -> dict[str, str]:
    """Name and version of the checker used for `task`, for provenance (one dict per task,
    shared: not to be changed)."""
    if task == "gsm8k":
        return {"name": "lemagen-numeric", "version": __version__}
    try:
        version = metadata.version("math-verify")
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        version = "unknown"
    return {"name": "math-verify", "version": version}


@cache  # read once per run (four files)
def grader_digest(directory: Path = Path(__file__).parent) -> str:
    """A hash of the grading code (`GRADING_MODULES` as found in `directory`, lemagen.math by
    default) and of the checker libraries' versions: grades kept across runs are keyed by it
    (`gradebook`), so any change to what decides a verdict (an upgrade, a local edit) grades
    everything again."""
    digest = hashlib.sha256()
    for name in GRADING_MODULES:
        source = (directory / name).read_bytes()
        digest.update(f"{name}\x1f{len(source)}\x1f".encode())
        digest.update(source)
    for library in CHECKER_LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:  # pragma: no cover - they are dependencies
            version = "-"
        digest.update(f"{library}={version}\x1f".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- MATH fast path

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|\\left|\\right|\\displaystyle|\s+")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°")
_WORD_ANSWER = re.compile(r"[a-z]+(?:[a-z ]*[a-z])?")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LONG_NUMBER = re.compile(rf"\d{{{answers.MAX_DIGITS + 1}}}")


def normalize_latex(answer: str) -> str:
    """Light, safe normalisation for exact comparison (not a substitute for symbolic checking)."""
    text = answer.strip()
    for _ in range(3):
        text = _TEXT_WRAPPERS.sub(r"\1", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    text = _SPACING.sub("", text)
    return text.rstrip(".")


def _word_answer(norm: str) -> str | None:
    """`Evelyn`, `(C)`, `even`: a pure-text answer, lowercased, else None."""
    bare = norm.strip("()").lower()
    if len(bare) >= 2 and _WORD_ANSWER.fullmatch(bare):
        return bare
    return None


# ---------------------------------------------------------------- inequalities as intervals

_INTERVAL_LIKE = re.compile(r"\\infty|\\cup|^\s*\\left\s*[\[(]|^\s*[\[(][^,]*,[^,]*[\])]\s*$")
_RELATION = re.compile(r"\\leq?(?![a-z])|\\geq?(?![a-z])|<=|>=|[<>\u2264\u2265]")
_UNION = re.compile(r"\\text\s*\{\s*or\s*\}|\bor\b|\\cup|\\lor")
_INTERSECTION = re.compile(r"\\text\s*\{\s*and\s*\}|\band\b|\\land|\\wedge")
_VARIABLE = re.compile(r"[a-zA-Z]")


def as_interval(text: str) -> str | None:
    """One-variable inequalities as interval notation: `x<-2 \\text{ or } x>3` ->
    `(-\\infty,-2)\\cup(3,\\infty)`, `-1 < x \\le 4` -> `(-1,4]`; None for anything else."""
    pieces = []
    for part in _UNION.split(text):
        bounds = [_bounds(p) for p in _INTERSECTION.split(part)]
        if not bounds or any(b is None for b in bounds):
            return None
        low, high = "(-\\infty", "\\infty)"
        for b in bounds:
            assert b is not None
            low = b[0] if b[0] is not None else low
            high = b[1] if b[1] is not None else high
        pieces.append(f"{low},{high}")
    return "\\cup".join(pieces)


def _bounds(part: str) -> tuple[str | None, str | None] | None:
    """`x \\ge 2` -> (`[2`, None); `1 < x < 3` -> (`(1`, `3)`); None if not such a relation."""
    terms = [t.strip() for t in _RELATION.split(part.strip().strip("$"))]
    ops = _RELATION.findall(part)
    var = [i for i, t in enumerate(terms) if _VARIABLE.fullmatch(t)]
    if len(ops) not in (1, 2) or len(var) != 1 or not all(terms):
        return None
    low: str | None = None
    high: str | None = None
    for i, op in enumerate(ops):
        less = op in ("<", "<=", "\u2264") or op.startswith("\\l")
        closed = op not in ("<", ">")
        left, right = terms[i], terms[i + 1]
        if _VARIABLE.fullmatch(left) and left == terms[var[0]]:  # x < b  /  x > a
            bound, upper = right, less
        elif _VARIABLE.fullmatch(right) and right == terms[var[0]]:  # a < x  /  b > x
            bound, upper = left, not less
        else:
            return None
        if upper:
            high = bound + ("]" if closed else ")")
        else:
            low = ("[" if closed else "(") + bound
    return low, high


# ---------------------------------------------------------------- worker


class _Worker:
    """One long-lived `lemagen.math._mathworker` process with `children` checker children,
    restarted when it stops answering."""

    def __init__(self, children: int = 1) -> None:
        self.children = children
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lemagen.math._mathworker", str(self.children)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._buffer = b""
        if self._readline(proc, _STARTUP_TIMEOUT) is None:
            self._stop(proc)
            raise RuntimeError("the Math-Verify worker process did not start")
        return proc

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def _readline(self, proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
        """The worker's next line, or None if none came within `timeout` or it ended. Read
        unbuffered, so that lines already arrived are never left waiting behind `select`."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                return None
            data = os.read(fd, 1 << 16)
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def equal(self, gold: str, pred: str, timeout: float) -> bool | None:
        """True/False, or None when the check ran out of time."""
        return self.equal_many([(gold, pred)], timeout)[0]

    def equal_many(self, pairs: list[tuple[str, str]], timeout: float) -> list[bool | None]:
        """`equal` for every pair, in order, up to two per checker child in flight at once.
        The worker enforces each limit itself (in its forked children, so it stays warm); if
        it sends nothing for a grace period past the limit, it is replaced and the checks it
        held count as timeouts."""
        results: dict[int, bool | None] = {}
        window = 2 * self.children
        with self._lock:
            sent = 0
            outstanding: set[int] = set()
            while len(results) < len(pairs):
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = self._start()
                proc = self._proc
                assert proc.stdin is not None
                while sent < len(pairs) and len(outstanding) < window:
                    gold, pred = pairs[sent]
                    proc.stdin.write(json.dumps([sent, gold, pred, timeout]).encode() + b"\n")
                    outstanding.add(sent)
                    sent += 1
                proc.stdin.flush()
                line = self._readline(proc, timeout + _GRACE)
                if line is None:
                    self._stop(proc)
                    self._proc = None
                    results.update(dict.fromkeys(outstanding))
                    outstanding.clear()
                    continue
                reply = json.loads(line)
                index = int(reply["id"])
                outstanding.discard(index)
                results[index] = None if reply.get("timeout") else bool(reply["equal"])
        return [results[i] for i in range(len(pairs))]

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._finish(self._proc)
                self._proc = None

    @staticmethod
    def _finish(proc: subprocess.Popen[bytes]) -> None:
        """End the worker the way it ends its own checker children: by closing its input."""
        assert proc.stdin is not None
        try:
            proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _Worker._stop(proc)


class Grader:
    """Grades answers for one run. Thread-safe; caches results by (task, gold, pred).

    Symbolic checks run in `workers` checker processes at once (`--workers`); `grade_many`
    keeps them all busy and hands the grades back in input order, each the same as `grade`
    would give."""

    def __init__(self, timeout: float = DEFAULT_CHECK_TIMEOUT, workers: int = 1) -> None:
        self.timeout = timeout
        self.workers = max(1, workers)
        self._worker = _Worker(self.workers)
        self._cache: dict[tuple[str, str, str], Verdict] = {}

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._worker.close()

    def grade(self, task: str, gold: str, text: str) -> Grade:
        """Extract the final answer of `text` and compare it with `gold`."""
        pred, method = answers.extract_how(task, text)
        if pred is None:
            return Grade(None, "no_answer")
        return Grade(pred, self.compare(task, gold, pred), method)

    def grade_fast(self, task: str, gold: str, text: str) -> Grade | None:
        """`grade`, when that needs no symbolic check (or its verdict is remembered from this
        run); None when it does."""
        pred, method = answers.extract_how(task, text)
        if pred is None:
            return Grade(None, "no_answer")
        key = (task, gold, pred)
        verdict = self._cache.get(key)
        if verdict is None:
            fast = self._fast(task, gold, pred)
            if isinstance(fast, tuple):
                return None
            verdict = self._remember(key, fast)
        return Grade(pred, verdict, method)

    def grade_many(self, items: Iterable[tuple[str, str, str]]) -> Iterator[Grade]:
        """`grade(task, gold, text)` for each item, in order, with the symbolic checks of
        a batch of items spread over the checker processes. An error reading `items` is
        raised after the items before it are graded."""
        batch: list[tuple[str, str, str]] = []
        try:
            for item in items:
                batch.append(item)
                if len(batch) >= 32 * self.workers:
                    yield from self._grade_batch(batch)
                    batch = []
        except Exception:
            yield from self._grade_batch(batch)  # what came before a bad input row
            raise
        yield from self._grade_batch(batch)

    def _grade_batch(self, batch: list[tuple[str, str, str]]) -> list[Grade]:
        found = [answers.extract_how(task, text) for task, _, text in batch]
        symbolic: dict[tuple[str, str, str], tuple[str, str]] = {}
        for (task, gold, _), (pred, _) in zip(batch, found, strict=True):
            key = (task, gold, pred or "")
            if pred is None or key in self._cache or key in symbolic:
                continue
            fast = self._fast(task, gold, pred)
            if isinstance(fast, tuple):
                symbolic[key] = fast
            else:
                self._remember(key, fast)
        if symbolic:
            checked = self._worker.equal_many(list(symbolic.values()), self.timeout)
            for key, equal in zip(symbolic, checked, strict=True):
                self._remember(key, "timeout" if equal is None else _verdict(equal))
        return [
            Grade(None, "no_answer")
            if pred is None
            else Grade(
                pred, self._cache.get((task, gold, pred)) or self.compare(task, gold, pred), method
            )
            for (task, gold, _), (pred, method) in zip(batch, found, strict=True)
        ]

    def compare(self, task: str, gold: str, pred: str) -> Verdict:
        key = (task, gold, pred)
        cached = self._cache.get(key)
        if cached is None:
            fast = self._fast(task, gold, pred)
            if isinstance(fast, tuple):
                equal = self._worker.equal(*fast, self.timeout)
                fast = "timeout" if equal is None else _verdict(equal)
            cached = self._remember(key, fast)
        return cached

    def _remember(self, key: tuple[str, str, str], verdict: Verdict) -> Verdict:
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = verdict
        return verdict

    def _fast(self, task: str, gold: str, pred: str) -> Verdict | tuple[str, str]:
        """The verdict where no symbolic check is needed, else the (gold, pred) to check."""
        if task == "gsm8k":
            if _PLAIN_NUMBER.fullmatch(gold) and _PLAIN_NUMBER.fullmatch(pred):
                same = answers.decimal_text(gold) == answers.decimal_text(pred)  # any length
                return "correct" if same else "wrong"
            g, p = answers.parse_number(gold), answers.parse_number(pred)
            return "correct" if g is not None and p is not None and g == p else "wrong"
        g_norm, p_norm = normalize_latex(gold), normalize_latex(pred)
        if g_norm == p_norm:
            return "correct"
        g_word, p_word = _word_answer(g_norm), _word_answer(p_norm)
        if g_word is not None or p_word is not None:
            # Text answers compare as text: sympy would read `Evelyn` as a product of symbols
            # and call any anagram of it equal.
            return "correct" if g_word == p_word else "wrong"
        if _PLAIN_NUMBER.fullmatch(g_norm) and _PLAIN_NUMBER.fullmatch(p_norm):
            same = answers.decimal_text(g_norm) == answers.decimal_text(p_norm)
            return "correct" if same else "wrong"
        if _LONG_NUMBER.search(g_norm) or _LONG_NUMBER.search(p_norm):
            return "wrong"  # a number too long to read is compared as text (unequal above)
        # Math-Verify compares `x<-2 \text{ or } x>3` with no interval: write it as one.
        if _INTERVAL_LIKE.search(gold):
            pred = as_interval(pred) or pred
        elif _INTERVAL_LIKE.search(pred):
            gold = as_interval(gold) or gold
        return gold, pred


def _verdict(equal: bool) -> Verdict:
    return "correct" if equal else "wrong"
