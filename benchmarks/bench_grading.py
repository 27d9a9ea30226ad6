"""Answer-checking speed and `lemagen grade` agreement on labelled outputs.

Run by hand (not part of the test suite): `python benchmarks/bench_grading.py [--data DIR]`.
DIR defaults to ../shared/data beside the repository (GSM8K train/test, MATH-500).

Speed, on one core (the process and its checker worker are pinned to CPU 0): answer checks per
second for GSM8K and MATH, each with a reference measured in the same run:
  - GSM8K reference: the common eval-script check (last number in the text, float compare);
  - MATH reference: Math-Verify called in-process (parse + verify, its own signal timeouts).

Agreement: a labelled set assembled from the real solutions in the data (no LLM outputs are
reachable offline): GSM8K test rationales rendered in common model-output shapes, with the
right final answer (label correct) or a changed one (label wrong); MATH-500 solutions against
their PRM800K answer (correct), equivalent rewrites of that answer (correct), and other problems'
answers (wrong). The set is written to a JSONL file and labelled by running `lemagen grade`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lemagen.math.grading import Grader
from lemagen.records.problems import ProblemReader

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def lema_render(rationale: str, answer: str) -> str:
    """A GSM8K rationale as one paragraph ending `The answer is N.` (methods.md §0.3)."""
    body = re.sub(r"<<[^<>]*>>", "", rationale.rsplit("####", 1)[0]).strip()
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    lines = [ln if ln.endswith(".") else ln + "." for ln in lines]
    return " ".join([*lines, f"The answer is {answer}."])


SHAPES: list[Callable[[str, str], str]] = [
    lambda body, a: lema_render(body, a),
    lambda body, a: re.sub(r"#### .*$", f"#### {a}", body.strip()),
    lambda body, a: (
        body.rsplit("####", 1)[0].strip() + f"\nSo the final answer is $\\boxed{{{a}}}$."
    ),
    lambda body, a: body.rsplit("####", 1)[0].strip() + f"\nAnswer: {a}",
    # A base model that goes on to invent the next few-shot question (a run-on completion).
    lambda body, a: (
        lema_render(body, a) + "\n\nQuestion: A farmer has 12 cows and buys 3 more. "
        "How many cows does he have?\nAnswer: Let's think step by step. 12 + 3 = 15. "
        "The answer is 15."
    ),
]


def gsm8k_set(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    reader = ProblemReader()
    for i, row in enumerate(rows, 1):
        gold = reader.read(row, f"f:{i}").gold
        shape = SHAPES[i % len(SHAPES)]
        wrong = str(int(float(gold)) + rng.choice([-10, -2, -1, 1, 2, 10]))
        right_text = f"{int(gold):,}" if i % 7 == 0 and gold.isdigit() else gold
        out.append({**row, "response": shape(row["answer"], right_text), "label": "correct"})
        out.append({**row, "response": shape(row["answer"], wrong), "label": "wrong"})
    return out


def rewrites(gold: str) -> list[str]:
    """Equivalent ways to write a MATH answer."""
    forms = []
    simple = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", gold)
    if simple:
        forms.append(f"{simple.group(1)}/{simple.group(2)}")
    if "\\frac" in gold:
        forms.append(gold.replace("\\frac", "\\dfrac"))
    if "\\left" in gold:
        forms.append(gold.replace("\\left", "").replace("\\right", ""))
    if re.fullmatch(r"-?\d+", gold):
        forms.append(f"{gold}.0")
    if " " in gold:
        forms.append(gold.replace(" ", ""))
    return forms


def math_set(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    reader = ProblemReader()
    golds = [reader.read(r, f"f:{i}").gold for i, r in enumerate(rows, 1)]
    for i, row in enumerate(rows):
        body = row["answer"].rsplit("The answer is:", 1)[0]
        if "\\boxed" not in body:
            continue
        base = {"question": row["question"], "answer": golds[i]}
        out.append({**base, "response": body, "label": "correct"})
        for form in rewrites(golds[i]):
            out.append({**base, "response": f"The answer is ${form}$.", "label": "correct"})
        other = golds[(i + 7) % len(golds)]
        if "=" not in other + golds[i] and other.replace(" ", "") != golds[i].replace(" ", ""):
            out.append(
                {"question": row["question"], "answer": other, "response": body, "label": "wrong"}
            )
    return out


def naive_gsm8k(gold: str, text: str) -> bool:
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    if not numbers:
        return False
    try:
        return abs(float(numbers[-1].replace(",", "").rstrip(".")) - float(gold)) < 1e-6
    except ValueError:
        return False


def speed(rows: list[dict[str, Any]], task: str) -> dict[str, float]:
    reader = ProblemReader()
    pairs = [(reader.read(r, f"f:{i}").gold, r["response"]) for i, r in enumerate(rows, 1)]
    labels = [r["label"] == "correct" for r in rows]
    with Grader() as grader:
        if task == "math":
            grader.compare("math", "\\frac{1}{2}", "\\sqrt{2}")  # start the worker outside timing
        wall, cpu = time.perf_counter(), time.process_time()
        for gold, text in pairs:
            grader.grade(task, gold, text)
        ours = len(pairs) / (time.perf_counter() - wall)
        ours_cpu_ms = 1000 * (time.process_time() - cpu) / len(pairs)
    wall = time.perf_counter()
    verdicts = []
    if task == "gsm8k":
        for gold, text in pairs:
            verdicts.append(naive_gsm8k(gold, text))
    else:
        from math_verify import parse, verify

        for gold, text in pairs:
            verdicts.append(bool(verify(parse(f"${gold}$"), parse(text))))
    reference = len(pairs) / (time.perf_counter() - wall)
    ref_agree = sum(v == lab for v, lab in zip(verdicts, labels, strict=True)) / len(labels)
    return {
        "checks": len(pairs),
        "lemagen_per_s": ours,
        "lemagen_parent_cpu_ms": ours_cpu_ms,
        "reference_per_s": reference,
        "ratio": ours / reference,
        "reference_agreement": ref_agree,
    }


def agreement(rows: list[dict[str, Any]], task: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labelled.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "lemagen", "grade", str(path), "--task", task, "-q"],
            capture_output=True,
            text=True,
            check=True,
        )
    graded = [json.loads(line) for line in done.stdout.splitlines()]
    confusion = Counter((g["label"], g["verdict"]) for g in graded)
    agree = sum(v for (label, verdict), v in confusion.items() if label == verdict)
    misses = [
        (g["answer"] if task == "math" else "", g["pred"], g["label"], g["verdict"])
        for g in graded
        if g["label"] != g["verdict"]
    ][:8]
    return {
        "rows": len(graded),
        "agreement": agree / len(graded),
        "confusion": {f"{k[0]}->{k[1]}": v for k, v in sorted(confusion.items())},
        "disagreements": misses,
    }


def timeouts(count: int = 20, limit: float = 1.0) -> dict[str, float]:
    """`count` answers that no check finishes (`9^{9^{9^{k}}}`), at a `limit`-second check
    time limit: seconds per timed-out check, against the limit itself (the ideal), and how
    long the next ordinary check takes after them."""
    with Grader(timeout=limit) as grader:
        grader.compare("math", "\\frac{1}{2}", "0.5")  # start the worker
        start = time.perf_counter()
        verdicts = [grader.compare("math", "5", f"9^{{9^{{9^{{{9 + i}}}}}}}") for i in range(count)]
        per_check = (time.perf_counter() - start) / count
        start = time.perf_counter()
        after = grader.compare("math", "\\sqrt{8}", "2\\sqrt{2}")
        next_check = time.perf_counter() - start
    assert verdicts == ["timeout"] * count
    assert after == "correct"
    return {"checks": count, "limit_s": limit, "per_check_s": per_check,
            "ratio": per_check / limit, "next_check_s": next_check}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core; the checker worker inherits it
    rng = random.Random(0)
    gsm8k = gsm8k_set(load(args.data / "gsm8k" / "test.jsonl"), rng)
    math = math_set(load(args.data / "math" / "math500_test.jsonl"))
    results = {
        "gsm8k_speed": speed(gsm8k, "gsm8k"),
        "math_speed": speed(math, "math"),
        "gsm8k_agreement": agreement(gsm8k, "gsm8k"),
        "math_agreement": agreement(math, "math"),
        "timeouts": timeouts(),
    }
    print(json.dumps(results, indent=2))
    g, m = results["gsm8k_speed"], results["math_speed"]
    print("\n| task | checks | lemagen checks/s | reference checks/s | ratio |")
    print("|---|---|---|---|---|")
    print(
        f"| GSM8K | {g['checks']} | {g['lemagen_per_s']:.0f} | {g['reference_per_s']:.0f} "
        f"(last number, float) | {g['ratio']:.2f} |"
    )
    print(
        f"| MATH | {m['checks']} | {m['lemagen_per_s']:.0f} | {m['reference_per_s']:.0f} "
        f"(Math-Verify in-process) | {m['ratio']:.2f} |"
    )
    t = results["timeouts"]
    print(
        f"| timed-out checks (limit {t['limit_s']:.0f} s) | {t['checks']} | "
        f"{t['per_check_s']:.2f} s each | {t['limit_s']:.2f} s (the limit) | {t['ratio']:.2f} |"
    )
    print(f"\nthe next check after them: {t['next_check_s'] * 1000:.0f} ms")
    for task in ("gsm8k", "math"):
        a = results[f"{task}_agreement"]
        ref = results[f"{task}_speed"]["reference_agreement"]
        print(
            f"\n{task}: `lemagen grade` agreement {a['agreement']:.4f} on {a['rows']} rows "
            f"{a['confusion']}; reference checker agreement {ref:.4f}"
        )


if __name__ == "__main__":
    main()
