"""`lemagen inject` over the whole GSM8K training set, on one core.

Run by hand: `python benchmarks/bench_inject.py [--data DIR]` (DIR defaults to ../shared/data).
Reports, for the CLI end to end (`lemagen inject train.jsonl -o FILE`, pinned to one CPU), rows
written per second against a reference measured in the same run: `lemagen grade` over the same
file, the cheapest full pass of the CLI over it (read, parse, extract, write). Then, per error
type, the share of problems it could use, and the reasons problems were skipped; the same for
MATH-500 (mistakes in LaTeX arithmetic), whose figures docs/inject.md quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lemagen.mistakes.gsm8k import DEFAULT_TYPES, ERROR_TYPES, Unusable, inject, parse_solution
from lemagen.mistakes.latex import inject_latex, parse_latex_solution
from lemagen.records.problems import ProblemReader

ROOT = Path(__file__).resolve().parent.parent


def timed(args: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        start = time.perf_counter()
        subprocess.run(
            ["taskset", "-c", "0", sys.executable, "-m", "lemagen", *args, "-o", str(out), "-q"],
            check=True,
        )
        elapsed = time.perf_counter() - start
        with out.open() as lines:
            return elapsed, sum(1 for _ in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    train = str(args.data / "gsm8k" / "train.jsonl")
    with open(train, encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    with tempfile.TemporaryDirectory() as tmp:
        graded = Path(tmp) / "graded.jsonl"
        graded.write_text("".join(json.dumps({**r, "response": r["answer"]}) + "\n" for r in rows))
        ref_s, ref_rows = timed(["grade", str(graded)])
    inj_s, inj_rows = timed(["inject", train])
    all_s, all_rows = timed(
        ["inject", train, "--types", ",".join(ERROR_TYPES), "--per-question", "4"]
    )
    retry_s, retry_rows = timed(["inject", train, "--format", "retry"])
    print(f"problems: {len(rows)}")
    print("| run | seconds | rows | rows/s | ratio to reference |")
    print("|---|---|---|---|---|")
    ref_rate = ref_rows / ref_s
    for name, secs, count in [
        ("reference: lemagen grade (same file)", ref_s, ref_rows),
        ("lemagen inject (defaults)", inj_s, inj_rows),
        ("lemagen inject --types all --per-question 4", all_s, all_rows),
        ("lemagen inject --format retry", retry_s, retry_rows),
    ]:
        rate = count / secs
        print(f"| {name} | {secs:.2f} | {count} | {rate:.0f} | {rate / ref_rate:.2f} |")

    reader = ProblemReader()
    problems = [reader.read(r, f"f:{i}") for i, r in enumerate(rows, 1)]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print("\n| error type | usable problems | share |")
    print("|---|---|---|")
    for kind in ERROR_TYPES:
        usable, reasons = 0, Counter[str]()
        for p in problems:
            try:
                inject(parse_solution(p), p.question, (kind,), 1, random.Random(p.id))
                usable += 1
            except Unusable as exc:
                reasons[exc.reason] += 1
        print(f"| {kind} | {usable} | {usable / len(problems):.3f} | skipped: {dict(reasons)}")
    math_shares(args.data / "math" / "math500_test.jsonl")


def math_shares(path: Path) -> None:
    """MATH-500: problems usable with the default types (what `lemagen inject` writes), per
    type, and the set-aside reasons."""
    reader = ProblemReader()
    with open(path, encoding="utf-8") as lines:
        problems = [reader.read(json.loads(line), f"f:{i}") for i, line in enumerate(lines, 1)]
    print(f"\nMATH-500: {len(problems)} problems")
    print("| error types | usable problems | share | set aside |")
    print("|---|---|---|---|")
    for types in (DEFAULT_TYPES, *((t,) for t in DEFAULT_TYPES)):
        usable, reasons = 0, Counter[str]()
        for p in problems:
            try:
                sol = parse_latex_solution(p)
                inject_latex(sol, p.question, types, 1, random.Random(p.id))
                usable += 1
            except Unusable as exc:
                reasons[exc.reason] += 1
        share = usable / len(problems)
        print(f"| {','.join(types)} | {usable} | {share:.3f} | {dict(reasons.most_common())} |")


if __name__ == "__main__":
    main()
