#!/usr/bin/env python3
"""Sampled mutation testing for lemagen: mutmut's operators, a small sequential runner.

Mutants are generated with mutmut 3.x's own mutation operators
(`mutmut.mutation.file_mutation.create_mutations`, the same libcst visitor `mutmut run` uses, so
the same pragmas, skips and operator set), keeping, like `mutmut run`, only the mutations inside
top-level functions and class methods. Each sampled mutant is then applied ALONE to a scratch
copy of the checkout (no trampolines) and the given test files are run on it with
`pytest -x -q` in a fresh process (`nice -n 19`), one at a time, under a timeout.

Why not `mutmut run`: it can neither sample a fixed-seed subset nor restrict the test files per
module the way we compare before/after a refactor, and it forks workers in parallel.

mutmut is not a lemagen dependency (only this tool needs it). Written for mutmut 3.8.1
(libcst 1.9.0); install it beside lemagen's dev dependencies:

    pip install -e ".[dev]" "mutmut>=3,<4"

Outcome per mutant: killed (pytest exit != 0), survived (exit 0), timeout (over
--timeout-factor x the clean run's wall time, at least 30 s: counted as killed and reported
apart). Kill rate = (killed + timeout) / (killed + timeout + survived). --extra-tests are run
on each survivor afterwards, to record which survivors they would kill.

The kill rates reported for issue 9 (seed 1), from the repository root:

    python tools/mutation.py --label filtering --module lemagen/lema/filter.py \
        --tests tests/test_filter.py tests/test_export.py tests/test_cli.py \
            tests/test_records.py tests/test_correctors.py \
        --sample 60 --seed 1 --extra-tests tests/test_golden.py --out mutation.json
    python tools/mutation.py --label correction \
        --module lemagen/lema/correct.py lemagen/lema/replies.py \
        --tests tests/test_correction.py tests/test_replies.py tests/test_correctors.py \
            tests/test_filter.py tests/test_cli.py tests/test_prompts.py \
        --sample 60 --seed 1 --extra-tests tests/test_golden.py --out mutation.json
    python tools/mutation.py --label grading --module lemagen/math/grading.py \
        --tests tests/test_grading.py tests/test_answers.py tests/test_cli.py \
        --sample 60 --seed 1 --out mutation.json
    python tools/mutation.py --label answers --module lemagen/math/answers.py \
        --tests tests/test_grading.py tests/test_answers.py tests/test_cli.py \
        --sample 60 --seed 1 --out mutation.json
    python tools/mutation.py --label engine --module lemagen/engine/*.py \
        --tests tests/test_engine*.py tests/test_hardening_store.py \
        --sample 40 --seed 1 --out mutation.json
    python tools/mutation.py --report mutation.json > mutation.md

The sample is drawn from the mutants of the checkout as it is: on another revision of a module
(or, for a glob, another set of files) the same seed draws different mutants.
Several --module files (globs allowed) are pooled and the sample is drawn from their union;
--list prints every mutant, the sampled ones starred, without running anything. Results are
merged into --out under --label; a label whose mutants are all done is skipped unless --force;
an interrupted label resumes where it stopped.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A mutant: JSON-ready fields, plus "_render" (returns the mutated file's source).
Mutant = dict[str, Any]

RECORD_FIELDS = ("id", "file", "line", "function", "change", "before", "after")


def load_mutmut_defaults() -> None:
    """mutmut reads its config from the cwd; load its defaults from an empty dir once."""
    from mutmut.configuration import config, reset_config

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        Path(d, "setup.cfg").write_text("[mutmut]\nsource_paths = lemagen\n")
        os.chdir(d)
        try:
            reset_config()
            config()
        finally:
            os.chdir(here)


def generate_mutants(repo: Path, rel: str) -> list[Mutant]:
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider
    from mutmut.mutation.file_mutation import create_mutations, deep_replace

    code = (repo / rel).read_text("utf-8")
    module, mutations, _, _ = create_mutations(rel, code)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    # ids after the names mutmut gives (<dotted module>.x_<func>__mutmut_<n>, methods as
    # x\u01c1<Class>\u01c1<method>), numbered per function: <dotted module>:<func>__mutmut_<n>
    dotted = rel[:-3].replace("/", ".")
    owner: dict[int, str] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            owner[id(stmt)] = stmt.name.value
        elif isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            for meth in stmt.body.body:
                if isinstance(meth, cst.FunctionDef):
                    owner[id(meth)] = f"{stmt.name.value}.{meth.name.value}"

    def renderer(original: Any, mutated: Any) -> Callable[[], str]:
        def render() -> str:
            new = deep_replace(module, original, mutated)
            assert isinstance(new, cst.Module)
            return str(new.code)

        return render

    counter: dict[str, int] = {}
    out: list[Mutant] = []
    for m in mutations:
        func = m.contained_by_top_level_function
        if func is None or id(func) not in owner:
            continue  # module-level code: mutmut does not mutate it either
        fname = owner[id(func)]
        counter[fname] = counter.get(fname, 0) + 1
        pos = positions.get(m.original_node)
        before = " ".join(module.code_for_node(m.original_node).split())
        after = " ".join(module.code_for_node(m.mutated_node).split())
        out.append(
            {
                "id": f"{dotted}:{fname}__mutmut_{counter[fname]}",
                "file": rel,
                "line": pos.start.line if pos else None,
                "function": fname,
                "before": before[:160],
                "after": after[:160],
                "change": describe(before, after),
                "_render": renderer(m.original_node, m.mutated_node),
            }
        )
    return out


def describe(before: str, after: str, ctx: int = 30) -> str:
    """The changed part of a mutation with a little context: `...ctx[old → new]ctx...`."""
    p = 0
    while p < min(len(before), len(after)) and before[p] == after[p]:
        p += 1
    q = 0
    while q < min(len(before), len(after)) - p and before[-1 - q] == after[-1 - q]:
        q += 1
    head = ("…" if p > ctx else "") + before[max(0, p - ctx) : p]
    tail = after[len(after) - q : len(after) - q + ctx] + ("…" if q > ctx else "")
    return f"{head}[{before[p : len(before) - q]} → {after[p : len(after) - q]}]{tail}"


def make_copy(repo: Path) -> Path:
    dest = Path(tempfile.mkdtemp(prefix="mutcopy-"))
    # tracked + untracked-not-ignored files, as they are in the work tree (uncommitted edits count)
    ls = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if ls.returncode != 0:  # not a git checkout: copy everything but caches
        shutil.rmtree(dest)
        ignore = shutil.ignore_patterns(
            ".git", "__pycache__", "*.pyc", ".venv", "venv", "mutants", ".pytest_cache"
        )
        shutil.copytree(repo, dest, ignore=ignore)
        return dest
    for f in ls.stdout.split(b"\0"):
        if not f:
            continue
        src = repo / os.fsdecode(f)
        if not src.is_file():
            continue
        dst = dest / os.fsdecode(f)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return dest


def run_tests(
    copy: Path, python: str, tests: list[str], timeout: float | None
) -> tuple[str, float, int | None, str]:
    """Run pytest on `tests` in `copy`: (status, seconds, exit code, last output line)."""
    env = dict(os.environ)
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(copy) + (os.pathsep + pythonpath if pythonpath else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never a stale .pyc of a mutated file
    cmd = ["nice", "-n", "19", python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, *tests],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", time.monotonic() - t0, None, ""
    dt = time.monotonic() - t0
    tail = out.decode(errors="replace").strip().splitlines()
    last = tail[-1] if tail else ""
    return ("survived" if proc.returncode == 0 else "killed"), dt, proc.returncode, last


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repo", default=".", help="checkout to measure (copied; never modified)")
    ap.add_argument(
        "--report",
        metavar="RESULTS_JSON",
        help="print a markdown summary of a results file and exit",
    )
    ap.add_argument("--label", help="name of this measurement in the results file")
    ap.add_argument(
        "--module",
        nargs="+",
        help="module file(s) relative to --repo; globs allowed (lemagen/engine/*.py)",
    )
    ap.add_argument("--tests", nargs="+", help="test files run on each mutant")
    ap.add_argument("--sample", type=int, default=60, help="mutants to sample (0 = all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout-factor", type=float, default=3.0, help="x the clean run's wall time")
    ap.add_argument(
        "--extra-tests",
        nargs="*",
        default=[],
        help="run on each survivor afterwards; records which survivors these kill",
    )
    ap.add_argument(
        "--python", default=sys.executable, help="interpreter with lemagen's deps + pytest"
    )
    ap.add_argument("--out", default="results.json")
    ap.add_argument("--list", action="store_true", help="only list the mutants (and the sample)")
    ap.add_argument("--force", action="store_true", help="redo a finished label")
    args = ap.parse_args()
    if args.report:
        print(report(json.loads(Path(args.report).read_text("utf-8"))))
        return 0
    if not (args.label and args.module and (args.tests or args.list)):
        ap.error("--label, --module and --tests are required")

    repo = Path(args.repo).resolve()
    modules: list[str] = []
    for pat in args.module:
        found = glob.glob(pat if os.path.isabs(pat) else str(repo / pat))
        hits = sorted(str(Path(p).resolve().relative_to(repo)) for p in found)
        if not hits:
            sys.exit(f"no module matches {pat!r} under {repo}")
        modules += [h for h in hits if h not in modules]
    load_mutmut_defaults()
    mutants = [m for rel in modules for m in generate_mutants(repo, rel)]
    n = len(mutants)
    k = n if args.sample <= 0 else min(args.sample, n)
    picked = sorted(random.Random(args.seed).sample(range(n), k))
    sample = [mutants[i] for i in picked]
    print(
        f"[{args.label}] {n} mutants in {', '.join(modules)}; sampling {k} (seed {args.seed})",
        flush=True,
    )
    if args.list:
        chosen = set(picked)
        for i, m in enumerate(mutants):
            mark = "*" if i in chosen else " "
            print(f"{mark} {m['file']}:{m['line']} {m['id']}: {m['change']}")
        return 0
    return run(args, repo, modules, n, sample)


def run(
    args: argparse.Namespace, repo: Path, modules: list[str], n: int, sample: list[Mutant]
) -> int:
    """Run the sampled mutants (those not already done in --out), saving after each one."""
    label: str = args.label
    k = len(sample)
    sample_ids = [m["id"] for m in sample]
    out_path = Path(args.out)
    results: dict[str, Any] = json.loads(out_path.read_text("utf-8")) if out_path.exists() else {}
    prev: dict[str, Any] = results.get(label, {})
    if prev.get("complete") and not args.force and prev.get("sample_ids") == sample_ids:
        print(f"[{label}] already complete in {out_path}; --force to redo")
        return 0
    done: dict[str, dict[str, Any]] = {}
    if not args.force:
        wanted = set(sample_ids)
        done = {r["id"]: r for r in prev.get("mutants", []) if r["id"] in wanted}

    wall0 = time.monotonic()
    copy = make_copy(repo)
    try:
        status, clean_dt, rc, last = run_tests(copy, args.python, args.tests, None)
        if status != "survived":
            sys.exit(f"clean run fails (rc {rc}): {last}")
        timeout = max(args.timeout_factor * clean_dt, 30.0)
        extra_timeout = None
        print(f"[{label}] clean run {clean_dt:.1f}s ({last}); timeout {timeout:.0f}s", flush=True)
        if args.extra_tests:
            st, edt, rc, last = run_tests(copy, args.python, args.extra_tests, None)
            if st != "survived":
                sys.exit(f"clean run of extra tests fails (rc {rc}): {last}")
            extra_timeout = max(args.timeout_factor * edt, 30.0)

        rec: dict[str, Any] = {
            "repo": str(repo),
            "modules": modules,
            "tests": args.tests,
            "extra_tests": args.extra_tests,
            "seed": args.seed,
            "sample_size": args.sample,
            "generated": n,
            "sampled": k,
            "sample_ids": sample_ids,
            "clean_seconds": round(clean_dt, 1),
            "timeout_seconds": round(timeout, 1),
            "tool": tool_version(),
            "complete": False,
            "mutants": list(done.values()),
        }
        originals = {rel: (repo / rel).read_text("utf-8") for rel in modules}

        def save() -> None:
            rs: list[dict[str, Any]] = rec["mutants"]
            c = {
                s: sum(1 for r in rs if r["status"] == s) for s in ("killed", "survived", "timeout")
            }
            rec.update(c)
            denom = c["killed"] + c["survived"] + c["timeout"]
            rec["kill_rate"] = round((c["killed"] + c["timeout"]) / denom, 3) if denom else None
            if args.extra_tests:
                rec["survivors_killed_by_extra"] = sum(
                    1
                    for r in rs
                    if r["status"] == "survived" and r.get("extra_status") in ("killed", "timeout")
                )
            results[label] = rec
            tmp = out_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False), "utf-8")
            tmp.replace(out_path)

        for i, m in enumerate(sample, 1):
            if m["id"] in done:
                continue
            target = copy / m["file"]
            target.write_text(m["_render"](), "utf-8")
            try:
                st, dt, rc, last = run_tests(copy, args.python, args.tests, timeout)
                r: dict[str, Any] = {f: m[f] for f in RECORD_FIELDS}
                r.update(status=st, seconds=round(dt, 1), rc=rc, last_line=last[:200])
                if st == "survived" and args.extra_tests:
                    est, edt, _, elast = run_tests(
                        copy, args.python, args.extra_tests, extra_timeout
                    )
                    r.update(
                        extra_status=est, extra_seconds=round(edt, 1), extra_last_line=elast[:200]
                    )
            finally:
                target.write_text(originals[m["file"]], "utf-8")
            rec["mutants"].append(r)
            extra = f" | extra: {r['extra_status']}" if "extra_status" in r else ""
            print(
                f"[{label}] {i}/{k} {st:8s} {dt:5.1f}s {m['file']}:{m['line']} "
                f"{m['change']}{extra}",
                flush=True,
            )
            save()
        rec["complete"] = True
        rec["wall_seconds_this_run"] = round(time.monotonic() - wall0, 1)
        save()
        print(
            f"[{label}] killed {rec['killed']} timeout {rec['timeout']} "
            f"survived {rec['survived']} -> kill rate {rec['kill_rate']}",
            flush=True,
        )
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return 0


def report(results: dict[str, Any]) -> str:
    """A markdown summary of a results file: one table row per label, then the survivors."""
    lines = [
        "| label | module(s) | generated | sampled | killed | timeout | survived | kill rate |"
        " survivors killed by extra tests |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        extra = "-"
        if r.get("extra_tests"):
            names = " ".join(Path(t).name for t in r["extra_tests"])
            extra = f"{r.get('survivors_killed_by_extra', 0)}/{r.get('survived', 0)} ({names})"
        rate = f"{r['kill_rate']:.0%}" if r.get("kill_rate") is not None else "-"
        done = "" if r.get("complete") else " (INCOMPLETE)"
        lines.append(
            f"| {label}{done} | {', '.join(r['modules'])} | {r['generated']} | {r['sampled']} | "
            f"{r.get('killed', 0)} | {r.get('timeout', 0)} | {r.get('survived', 0)} | {rate} | "
            f"{extra} |"
        )
    for label, r in results.items():
        lines += [
            "",
            f"### Survivors: {label}",
            "",
            f"tests: `{' '.join(r['tests'])}`; clean run {r['clean_seconds']}s, "
            f"timeout {r['timeout_seconds']}s",
            "",
        ]
        surv = sorted(
            (m for m in r["mutants"] if m["status"] == "survived"),
            key=lambda m: (m["file"], m["line"] or 0),
        )
        for m in surv:
            ex = f" — {m['extra_status']} by extra tests" if "extra_status" in m else ""
            change = m.get("change") or describe(m["before"], m["after"])
            lines.append(f"- `{m['file']}:{m['line']}` ({m['function']}): `{change}`{ex}")
        if not surv:
            lines.append("- none")
        tos = [m for m in r["mutants"] if m["status"] == "timeout"]
        if tos:
            lines += ["", "Timed out (counted as killed):"]
            for m in tos:
                change = m.get("change") or describe(m["before"], m["after"])
                lines.append(f"- `{m['file']}:{m['line']}`: `{change}`")
    return "\n".join(lines)


def tool_version() -> str:
    from importlib.metadata import version

    return (
        f"mutmut {version('mutmut')} operators (libcst {version('libcst')}), "
        "tools/mutation.py runner"
    )


if __name__ == "__main__":
    sys.exit(main())
