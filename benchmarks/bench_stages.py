"""Whole-command speed of the stages that need no model (`inject`, `grade`, `filter`, `export`,
`stats`), against another version of lemagen measured in the same run.

Run by hand (not part of the test suite):

    python benchmarks/bench_stages.py --against REF [--data DIR] [--repeat 5]

REF is a git revision (or a directory holding a lemagen checkout); it is checked out into a
temporary worktree and run with the same Python, so both versions read the same inputs on the
same machine at the same time. Each command runs `--repeat` times per version, alternating, and
the fastest run of each counts (the least disturbed by anything else on the machine). The table
gives wall seconds and CPU seconds (user + system of the command's process and its children) and
the ratios this checkout / REF (below 1.05: no more than 5% slower). On a busy machine the CPU
ratio is the steadier figure: it does not count the time the command waited for a core.

Inputs (built once, in a temporary directory): the GSM8K training problems (DIR defaults to
../shared/data beside the repository) for `inject`; the golden pipeline's samples and
corrections (tests/data/golden), repeated to about 10,000 rows, for `grade`, `filter`,
`export` and `stats`.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def timed(tree: Path, args: list[str], work: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `args` under `tree`."""
    # Both trees run from bytecode, as an installed package does: a machine that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time compiling every module on each run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from lemagen.cli import main; main()", *args, "-q"],
        check=True,
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


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
        print(
            f"| command | {opts.against} s | this checkout s | ratio "
            f"| {opts.against} CPU s | this checkout CPU s | CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, args in commands.items():
            wall = {"base": float("inf"), "new": float("inf")}
            cpu = {"base": float("inf"), "new": float("inf")}
            for _ in range(opts.repeat):
                for key, tree in (("base", base), ("new", ROOT)):
                    w, c = timed(tree, args, tmp)
                    wall[key] = min(wall[key], w)
                    cpu[key] = min(cpu[key], c)
            print(
                f"| {name} | {wall['base']:.2f} | {wall['new']:.2f} "
                f"| {wall['new'] / wall['base']:.3f} | {cpu['base']:.2f} | {cpu['new']:.2f} "
                f"| {cpu['new'] / cpu['base']:.3f} |",
                flush=True,
            )
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
