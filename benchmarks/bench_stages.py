"""Whole-command speed of the stages that need no model (`inject`, `grade`, `filter`, `export`,
`stats`), against another version of lemagen measured in the same run.

Run by hand (not part of the test suite):

    python benchmarks/bench_stages.py --against REF [--data DIR] [--repeat 5]

REF is a git revision (or a directory holding a lemagen checkout); it is checked out into a
temporary worktree and run with the same Python, so both versions read the same inputs on the
same machine at the same time. Each command runs `--repeat` times per version, alternating, and
the fastest run of each counts (the least disturbed by anything else on the machine). The table
gives seconds and the ratio this checkout / REF (below 1.05: no more than 5% slower).

Inputs (built once, in a temporary directory): the GSM8K training problems (DIR defaults to
../shared/data beside the repository) for `inject`; the golden pipeline's samples and
corrections (tests/data/golden), repeated to about 10,000 rows, for `grade`, `filter`,
`export` and `stats`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"


def checkout(ref: str, into: Path) -> Path:
    if Path(ref).is_dir():
        return Path(ref).resolve()
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), ref],
        check=True,
        capture_output=True,
    )
    return into


def repeat_lines(paths: list[Path], rows: int, out: Path) -> Path:
    lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines() if line]
    with out.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            handle.write(lines[i % len(lines)] + "\n")
    return out


def timed(tree: Path, args: list[str], work: Path) -> float:
    # Both trees run from bytecode, as an installed package does: a machine that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time compiling every module on each run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from lemagen.cli import main; main()", *args, "-q"],
        check=True,
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, metavar="REF")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10_000)
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    base = checkout(opts.against, tmp / "base")
    try:
        problems = opts.data / "gsm8k" / "train.jsonl"
        samples = repeat_lines(
            [GOLDEN / "gsm8k.sample.jsonl", GOLDEN / "math.sample.jsonl"],
            opts.rows,
            tmp / "s.jsonl",
        )
        corrections = repeat_lines(
            [
                GOLDEN / "gsm8k.correct.jsonl",
                GOLDEN / "math.correct.jsonl",
                GOLDEN / "inject.jsonl",
            ],
            opts.rows,
            tmp / "c.jsonl",
        )
        commands = {
            "inject (GSM8K train, 7,473 problems)": ["inject", str(problems)],
            f"grade ({opts.rows} samples)": ["grade", str(samples)],
            f"filter ({opts.rows} corrections)": ["filter", str(corrections), "--with-cot"],
            f"export -f sharegpt ({opts.rows})": ["export", str(corrections), "-f", "sharegpt"],
            f"export -f dpo ({opts.rows})": ["export", str(corrections), "-f", "dpo"],
            f"stats ({2 * opts.rows} records)": ["stats", str(samples), str(corrections)],
        }
        for tree in (base, ROOT):  # compile both trees once (see `timed`)
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(tree / "lemagen")],
                check=True,
                env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            )
        print(f"| command | {opts.against} s | this checkout s | ratio |")
        print("|---|---|---|---|")
        for name, args in commands.items():
            best = {"base": float("inf"), "new": float("inf")}
            for _ in range(opts.repeat):
                best["base"] = min(best["base"], timed(base, args, tmp))
                best["new"] = min(best["new"], timed(ROOT, args, tmp))
            ratio = best["new"] / best["base"]
            print(f"| {name} | {best['base']:.2f} | {best['new']:.2f} | {ratio:.3f} |", flush=True)
    finally:
        if base == tmp / "base":
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
