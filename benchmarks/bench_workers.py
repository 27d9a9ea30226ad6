"""`lemagen grade --workers N`: the speed-up of symbolic answer checks spread over N processes.

Run by hand (not part of the test suite):

    python benchmarks/bench_workers.py [--rows 600] [--repeat 2] [--workers 1,2]

The input is MATH-style outputs whose answers need Math-Verify (no exact-text fast path): each
row a different fraction or radical written in an equivalent form, so no check is answered
from the grader's cache. The same file is graded with each worker count, alternating, each
`--repeat` times; the fastest run of each counts (the least disturbed by anything else on the
machine). The reference is `--workers 1` measured in the same run: the table gives seconds,
checks per second and the ratio to it. The outputs of every run are compared byte for byte.

A machine shared with other work may not give this run more than one core however many it
has: the last line measures what it gives, as the speed-up of N forked pure-Python loops over
one, in the same run (2.00x for 2 on an idle 2-core machine; 1.00x means one core's worth).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def outputs(rows: int) -> list[dict[str, str]]:
    made = []
    for k in range(rows):
        a, b = 3 + k, 7 + 2 * k
        if k % 2:
            gold, pred = f"\\frac{{{a}}}{{{b}}}", f"\\frac{{{2 * a}}}{{{2 * b}}}"
        else:
            gold, pred = f"{a}\\sqrt{{2}}", f"\\sqrt{{{2 * a * a}}}"
        if k % 5 == 0:
            pred = f"\\frac{{{a + 1}}}{{{b}}}"  # some wrong ones
        made.append(
            {
                "question": f"q{k}",
                "answer": f"\\boxed{{{gold}}}",
                "response": f"$\\boxed{{{pred}}}$",
            }
        )
    return made


def grade(path: Path, workers: int) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lemagen",
            "grade",
            str(path),
            "--task",
            "math",
            "-q",
            "--workers",
            str(workers),
            "--check-timeout",
            "30",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start, done.stdout


def _burn() -> None:
    total = 0
    for i in range(4_000_000):
        total += i


def parallelism(n: int) -> float:
    """How much faster n forked CPU-bound loops finish than one would n times over."""
    times = []
    for k in (1, n):
        start = time.perf_counter()
        pids = []
        for _ in range(k):
            pid = os.fork()
            if pid == 0:
                _burn()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        times.append(time.perf_counter() - start)
    return n * times[0] / times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if counts[0] != 1:
        counts.insert(0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outputs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in outputs(args.rows)))
        best = {w: float("inf") for w in counts}
        seen: set[bytes] = set()
        for _ in range(args.repeat):
            for w in counts:
                seconds, out = grade(path, w)
                best[w] = min(best[w], seconds)
                seen.add(out)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.rows} symbolic checks, {cores} cores available, fastest of {args.repeat}")
    print(f"{'workers':>8} {'seconds':>8} {'checks/s':>9} {'speed-up':>9}")
    for w in counts:
        print(f"{w:>8} {best[w]:>8.2f} {args.rows / best[w]:>9.1f} {best[1] / best[w]:>8.2f}x")
    print("outputs identical across runs:", len(seen) == 1)
    top = max(counts)
    print(f"CPU this run was given: {top} forked loops ran {parallelism(top):.2f}x one")


if __name__ == "__main__":
    main()
