"""A fixed pipeline over every command, for the golden test (`tests/test_golden.py`).

`run_pipeline(fake, out)` runs sample, correct, filter, grade, inject, every export format and
stats against the loopback server and writes each command's stdout (and the files it writes)
into `out`. The golden files in `tests/data/golden/` were written by this function on the main
branch before the typed-records refactor (and again for schema version 3, whose records state
their `kind`); regenerate them only for a deliberate change of output, with
`python -m tests.golden tests/data/golden`.

The responder here answers in more ways than `MathTutor` (unanswered, truncated and repeated
samples; corrections that are unparseable, wrong, out of range, unchanged or un-elided), so the
golden files hold every path of every stage.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import DATA, EXAMPLES, known_answers, run
from tests.fake_openai import FakeOpenAI, MathTutor, Reply, _last_question

GSM8K = [EXAMPLES / "gsm8k.jsonl", DATA / "gsm8k_train_slice.jsonl"]
MATH = [EXAMPLES / "math.jsonl", DATA / "math500_slice.jsonl"]


def _bucket(text: str, k: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % k


@dataclass
class GoldenTutor(MathTutor):
    """MathTutor with every kind of reply the stages handle, chosen by a hash of the question."""

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        if "Original Solution:" in prompt:
            return [self.correct(prompt) for _ in range(n)]
        question = _last_question(prompt)
        task, gold = self.answers.get(question, ("gsm8k", "1"))
        kind = _bucket(question, 7)
        replies = [self.solve(task, gold, right=i % 2 == 0) for i in range(n)]
        if kind == 0 and n > 1:  # no answer at all
            replies[1] = ("I am not sure how to go on from here.", "stop")
        elif kind == 1 and n > 1:  # cut at the token limit
            replies[1] = ("We start with the first part and then", "length")
        elif kind == 2 and n > 3:  # the same wrong path twice
            replies[3] = replies[1]
        return replies

    def correct(self, prompt: str) -> Reply:
        query = prompt.rsplit("Question: ", 1)[1]
        question = query.split("\nOriginal Solution:", 1)[0]
        task, gold = self.answers.get(question, ("gsm8k", "1"))
        steps = re.findall(r"(?m)^Step (\d+): (.*)$", query)
        last = int(steps[-1][0])
        shown = f"${gold}$" if task == "math" else gold
        kind = _bucket(question + "/c", 6)
        explanation = "Explanation: The final step does not follow from the work before it."
        if kind == 1:  # the whole solution, un-elided
            body = "\n".join(f"Step {i}: {text}" for i, text in steps[:-1])
            return (
                f" Step {last}.\n{explanation}\nCorrect Solution:\n{{\n{body}\n"
                f"Step {last}: The answer is {shown}.\n}}",
                "stop",
            )
        if kind == 2:  # no explanation
            return f" Step {last}.\nCorrect Solution:\n{{\n...\nStep {last}: {shown}\n}}", "stop"
        if kind == 3:  # a fix that is still wrong
            wrong = "12345" if task == "gsm8k" else "$99$"
            return (
                f" Step {last}.\n{explanation}\nCorrect Solution:\n{{\n...\n"
                f"Step {last}: The answer is {wrong}.\n}}",
                "stop",
            )
        if kind == 4:  # a step that does not exist
            return (
                f" Step {last + 3}.\n{explanation}\nCorrect Solution:\n{{\n...\n"
                f"Step {last + 3}: The answer is {shown}.\n}}",
                "stop",
            )
        return super().correct(prompt)


def start_server() -> FakeOpenAI:
    return FakeOpenAI(GoldenTutor(known_answers(*GSM8K, *MATH)), tag_samples=True).start()


def _cat(paths: list[Path], out: Path, rows: int = 12) -> Path:
    """The first `rows` lines of each file, in one file."""
    lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()[:rows]]
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


_KIND = re.compile(r'^\{"kind":"[a-z]+",')


def _sorted(text: str) -> str:
    """The lines in order of what follows the `kind` a record states first (records written
    before kinds existed sorted the same way)."""
    return "".join(line + "\n" for line in sorted(text.splitlines(), key=_order))


def _order(line: str) -> str:
    return _KIND.sub("{", line, count=1)


def run_pipeline(fake: FakeOpenAI, out: Path) -> list[str]:
    """Run every command into `out`; the names of the files written, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    endpoint = ["--base-url", fake.base_url, "--concurrency", "1", "--retry-delay", "0"]
    cache = ["--cache-dir", str(out.parent / f"{out.name}-cache")]
    # Generous: a symbolic check that runs out of time on a loaded machine is a `timeout`
    # verdict, and a golden file that differs for it.
    checks = ["--check-timeout", "60"]

    def save(name: str, *args: str, stdin: str | None = None, unordered: bool = False) -> str:
        """Run a command; its stdout and stderr go to `out`. Engine-driven stages write rows
        as they finish: their lines (and their rejects) are sorted, so the files and what the
        next command reads are the same in every run."""
        result = run(*args, input=stdin)
        if result.exit_code != 0:
            raise AssertionError(f"{name}: exit {result.exit_code}: {result.stderr}")
        stdout = _sorted(result.stdout) if unordered else result.stdout
        if unordered:
            rejects = out / f"{name}.rejects.jsonl"
            rejects.write_text(_sorted(rejects.read_text(encoding="utf-8")), encoding="utf-8")
        (out / f"{name}.jsonl").write_text(stdout, encoding="utf-8")
        (out / f"{name}.stderr.txt").write_text(result.stderr, encoding="utf-8")
        return stdout

    for task, sources in (("gsm8k", GSM8K), ("math", MATH)):
        problems = _cat(sources, out.parent / f"{out.name}-{task}.jsonl")
        models = ["-m", "reasoner-a", "-m", "reasoner-b"]
        samples = save(
            f"{task}.sample",
            "sample", str(problems), *models, "-n", "4", "--seed", "3", "--keep", "all",
            "--rejects", str(out / f"{task}.sample.rejects.jsonl"), *endpoint, *cache, *checks,
            unordered=True,
        )  # fmt: skip
        corrections = save(
            f"{task}.correct",
            "correct", "-", "-m", "corrector", "--rejects",
            str(out / f"{task}.correct.rejects.jsonl"), *endpoint, *cache, *checks,
            stdin=samples, unordered=True,
        )  # fmt: skip
        save(
            f"{task}.filter",
            "filter", "-", "--with-cot", "--with-meta",
            "--rejects", str(out / f"{task}.filter.rejects.jsonl"),
            stdin=corrections,
        )  # fmt: skip
        save(f"{task}.filter-plain", "filter", "-", stdin=corrections)
        save(f"{task}.grade", "grade", "-", *checks, stdin=samples)
        for fmt in (
            "lema",
            "alpaca",
            "openai",
            "openai-dpo",
            "trl",
            "dpo",
            "cot",
            "lemma",
            "prm",
            "math-shepherd",
        ):
            save(f"{task}.export-{fmt}", "export", "-", "-f", fmt, stdin=corrections)
        save(f"{task}.export-trl-chat", "export", "-", "-f", "trl", "--chat", stdin=corrections)
        save(
            f"{task}.export-sharegpt",
            "export", "-", "-f", "sharegpt", "-o", str(out / f"{task}.sharegpt.jsonl"),
            "--dataset-info", str(out / "dataset_info.json"), stdin=corrections,
        )  # fmt: skip
        save(
            f"{task}.export-sft-mix",
            "export", "-", "-f", "alpaca", "--mix", "--seed", "5", stdin=corrections,
        )  # fmt: skip
        save(
            f"{task}.export-dpo-2",
            "export", "-", "-f", "dpo", "--max-pairs-per-question", "2", "--seed", "1",
            stdin=corrections,
        )  # fmt: skip

    gsm8k = str(out.parent / f"{out.name}-gsm8k.jsonl")
    injected = save(
        "inject",
        "inject", gsm8k, "--per-question", "2", "--seed", "4",
        "--types", "calculation,copy,operator,skip",
        "--rejects", str(out / "inject.rejects.jsonl"),
    )  # fmt: skip
    save("inject.filter", "filter", "-", stdin=injected)
    save("inject.export-lemma", "export", "-", "-f", "lemma", stdin=injected)
    save("inject-retry", "inject", gsm8k, "--format", "retry", "--retry-rate", "0.3")
    save("inject-retry-fake", "inject", gsm8k, "--format", "retry", "--fake", "--seed", "2")
    stats_inputs = sorted(
        str(p) for p in out.glob("*.jsonl") if p.name.split(".")[1] in ("sample", "correct")
    )
    save("stats", "stats", *stats_inputs, "--json")
    # Paths inside the outputs would differ between machines: the written files are compared
    # by name relative to `out`, so make the stats and dataset_info paths relative.
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        fixed = text.replace(str(out) + "/", "").replace(str(out.parent) + "/", "")
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")
    return sorted(p.name for p in out.iterdir())


def main() -> None:
    target = Path(sys.argv[1])
    fake = start_server()
    try:
        work = Path(tempfile.mkdtemp())
        names = run_pipeline(fake, work / "out")
        target.mkdir(parents=True, exist_ok=True)
        for old in target.iterdir():
            old.unlink()
        for name in names:
            (target / name).write_bytes((work / "out" / name).read_bytes())
    finally:
        fake.stop()
    print(f"wrote {len(names)} files to {target}", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    main()
