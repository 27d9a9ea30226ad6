from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lemagen.cli import cli
from lemagen.math.grading import Grader
from lemagen.records.problems import ProblemReader
from tests.fake_openai import FakeOpenAI, MathTutor

# Hugging Face datasets never reach the network in the tests (read when datasets is imported,
# so set before any test imports it; subprocesses inherit it).
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parent.parent
# The commands with --check-timeout (`art ask` has no environment variable) and the limit the
# tests give them: far beyond any check a loaded machine finishes.
CHECKING_COMMANDS = ("sample", "correct", "evolve", "inject", "analyze", "smooth", "crosscheck",
                     "grade")  # fmt: skip
CHECK_TIMEOUT = 300.0
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real keys or endpoints leak in, and nothing is written outside tmp_path."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    # No option from the developer's environment or a lemagen.toml in the working directory.
    for name in list(os.environ):
        if name.startswith("LEMAGEN_") and name != "LEMAGEN_REQUIRE_BROWSER":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEMAGEN_CONFIG", os.devnull)  # an empty config file
    # A symbolic check gets minutes, not the 3 s default: a fresh checker's first checks take
    # over a second on a busy machine, and a check that runs out of time changes a verdict.
    # Tests of the limit give --check-timeout (or Grader's timeout) themselves.
    for command in CHECKING_COMMANDS:
        monkeypatch.setenv(f"LEMAGEN_{command.upper()}_CHECK_TIMEOUT", str(CHECK_TIMEOUT))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LEMAGEN_CACHE_DIR", str(tmp_path / "lemagen-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def interruptible() -> None:
    """`preexec_fn` for a child the test interrupts: Ctrl-C as a terminal gives it. A suite
    started in the background of a script (`... &`) has SIGINT ignored, and a child would
    inherit that (Python installs no KeyboardInterrupt handler then) and never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def known_answers(*paths: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for path in paths:
        reader = ProblemReader()
        for lineno, row in enumerate(load_jsonl(path), 1):
            problem = reader.read(row, f"f:{lineno}")
            out[problem.question] = (str(problem.task), problem.gold)
    return out


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    tutor = MathTutor(
        known_answers(
            EXAMPLES / "gsm8k.jsonl",
            EXAMPLES / "math.jsonl",
            DATA / "gsm8k_train_slice.jsonl",
            DATA / "math500_slice.jsonl",
        )
    )
    server = FakeOpenAI(tutor, json_responder=tutor.as_json).start()
    yield server
    server.stop()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A loopback server that answers every prompt with "four" (the engine's own tests)."""
    fake = FakeOpenAI(lambda prompt, n: [("four", "stop")] * n).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def grader() -> Iterator[Grader]:
    with Grader(CHECK_TIMEOUT) as g:
        yield g


def run(*args: str, input: str | None = None) -> Result:
    """Invoke the CLI in-process; crashes surface as exceptions, not as exit code 1."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def endpoint(fake: FakeOpenAI) -> list[str]:
    """The options that point a command at the loopback server, quietly."""
    return ["--base-url", fake.base_url, "-q"]


def records(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
