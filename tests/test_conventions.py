"""Conventions: options from LEMAGEN_* variables and lemagen.toml (a flag beats its variable,
which beats the file, which beats the default), -v logging (never a key), shell completion,
and --version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import click
import pytest

from lemagen.cli import cli
from lemagen.engine.store import SCHEMA_VERSION as STORE_SCHEMA
from lemagen.records import SCHEMA_VERSION
from tests.conftest import CHECK_TIMEOUT, CHECKING_COMMANDS, DATA, EXAMPLES, records, run
from tests.fake_openai import FakeOpenAI

SLICE = str(DATA / "gsm8k_train_slice.jsonl")


def per_question(result_stdout: str) -> set[int]:
    """How many corrections `inject` wrote per question."""
    counts = Counter(json.loads(line)["id"] for line in result_stdout.splitlines() if line)
    return set(counts.values())


def test_env_and_config_and_flag_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEMAGEN_CONFIG")  # conftest's /dev/null: read ./lemagen.toml
    monkeypatch.chdir(tmp_path)
    default = per_question(run("inject", SLICE, "-q").stdout)
    assert default == {1}  # --per-question defaults to 1
    Path("lemagen.toml").write_text("[inject]\nper-question = 2\n")
    assert per_question(run("inject", SLICE, "-q").stdout) == {2}
    monkeypatch.setenv("LEMAGEN_INJECT_PER_QUESTION", "3")
    assert per_question(run("inject", SLICE, "-q").stdout) == {3}
    assert per_question(run("inject", SLICE, "-q", "--per-question", "1").stdout) == {1}
    monkeypatch.delenv("LEMAGEN_INJECT_PER_QUESTION")
    # --config names another file; top-level keys go to every command with that option.
    other = tmp_path / "other.toml"
    other.write_text("per_question = 3\nquiet = true\n")
    result = run("--config", str(other), "inject", SLICE)
    assert per_question(result.stdout) == {3}
    assert result.stderr == ""  # quiet = true


def test_every_option_has_its_variable_named_after_the_flag() -> None:
    checked = 0
    cli.load_all()
    for name, command in cli.commands.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name == "help":
                continue
            flag = next((o for o in param.opts if o.startswith("--")), f"--{param.name}")
            if param.envvar in ("OPENAI_BASE_URL", "LEMAGEN_CACHE_DIR"):
                continue  # the two that read a variable of their own
            assert param.envvar == f"LEMAGEN_{name}_{flag[2:]}".upper().replace("-", "_")
            checked += 1
    assert checked > 100
    help_text = " ".join(run("sample", "--help").stdout.split())
    assert "[env var: LEMAGEN_SAMPLE_MODEL; required]" in help_text
    assert "[env var: LEMAGEN_SAMPLE_MAX_TOKENS; default: 1024" in help_text
    assert "[env var: LEMAGEN_SAMPLE_N; default: 4" in help_text  # -n: no long flag


def test_model_from_the_environment(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMAGEN_SAMPLE_MODEL", "from-env")
    result = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "--base-url", fake.base_url, "-q")
    assert result.exit_code == 0, result.stderr
    assert {r["body"]["model"] for r in fake.requests} == {"from-env"}
    assert len(records(result)) >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[inject]\nper-questoin = 2\n", "lemagen.toml: [inject] per-questoin: `lemagen inject` "
         "has no --per-questoin"),
        ("[injcet]\nper-question = 2\n", "lemagen.toml: [injcet]: no such command"),
        ("per-questoin = 2\n", "lemagen.toml: per-questoin: no command has --per-questoin"),
        ("[inject]\nper-question = 'two'\n", "lemagen.toml: [inject] per-question: 'two' is "
         "not a valid integer range."),
        ("[inject\n", "lemagen.toml: not TOML: "),
    ],
)  # fmt: skip
def test_config_mistakes_are_one_line(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEMAGEN_CONFIG")
    monkeypatch.chdir(tmp_path)
    Path("lemagen.toml").write_text(text)
    result = run("inject", SLICE, "-q")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"Error: {message}")


def test_verbose_logs_requests_and_set_asides_but_never_keys(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag_key, env_key = "flag-given-key-0123456789", "sk-env-given-key-0123456789"
    monkeypatch.setenv("MY_KEY", flag_key)
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    fake.api_key = flag_key  # the server refuses any other key: this one was sent
    problems = tmp_path / "p.jsonl"
    rows = [json.loads(line) for line in (EXAMPLES / "gsm8k.jsonl").read_text().splitlines()[:3]]
    problems.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"question": "no gold"}]))
    args = ["sample", str(problems), "-m", "r", "-n", "2", "--base-url", fake.base_url,
            "--api-key-env", "MY_KEY", "--skip-bad-rows", "--no-cache"]  # fmt: skip
    result = run("-v", *args)
    assert result.exit_code == 0, result.stderr
    log = result.stderr
    sent = [line for line in log.splitlines() if line.startswith("lemagen: POST ")]
    assert len(sent) == len(fake.requests) == 3
    assert sent[0].startswith(f"lemagen: POST {fake.base_url.rstrip('/')}/chat/completions model=r")
    assert f"lemagen: set aside (missing_field): {problems}:4: missing field 'answer'" in log
    assert "request body" not in log
    debug = run("-vv", *args).stderr
    assert "lemagen: request body: {" in debug
    assert '"model": "r"' in debug
    # The key given through --api-key-env, and the one in OPENAI_API_KEY, appear nowhere.
    for text in (log, debug, result.stdout):
        assert flag_key not in text
        assert env_key not in text
    # Without -v: no log lines.
    assert "lemagen: POST" not in run(*args).stderr


def test_shell_completion(tmp_path: Path) -> None:
    env = {**os.environ, "_LEMAGEN_COMPLETE": "bash_source"}
    script = subprocess.run(
        [sys.executable, "-m", "lemagen"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert script.returncode == 0
    assert "_lemagen_completion" in script.stdout
    env = {**os.environ, "_LEMAGEN_COMPLETE": "bash_complete", "COMP_WORDS": "lemagen ex",
           "COMP_CWORD": "1"}  # fmt: skip
    words = subprocess.run(
        [sys.executable, "-m", "lemagen"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    ).stdout  # fmt: skip
    assert words.split() == ["plain,export"]


def test_version_names_what_decides_results() -> None:
    result = run("--version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "lemagen, version 0.1.0"  # click's own first line, as before
    assert lines[1].startswith("grader: gsm8k lemagen-numeric 0.1.0, math math-verify ")
    assert lines[2] == f"request store: schema {STORE_SCHEMA}, key version 1"
    assert lines[3] == f"records: schema {SCHEMA_VERSION}"
    assert lines[4].startswith(f"python {sys.version_info.major}.{sys.version_info.minor}.")
    assert "msgspec " in lines[5]
    assert "pyarrow " in lines[5]


def test_docs_config_example(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(
        encoding="utf-8"
    )
    block = page.split("```toml\n", 1)[1].split("```", 1)[0]
    assert 'base-url = "http://localhost:8000/v1"' in block
    monkeypatch.delenv("LEMAGEN_CONFIG")
    monkeypatch.chdir(tmp_path)
    Path("lemagen.toml").write_text(block.replace("http://localhost:8000/v1", fake.base_url))
    result = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-q")
    assert result.exit_code == 0, result.stderr
    bodies = [r["body"] for r in fake.requests]
    assert len(bodies) >= 1
    assert {b["model"] for b in bodies} == {"Qwen/Qwen2.5-1.5B-Instruct"}
    assert {(b["n"], b["max_tokens"]) for b in bodies} == {(8, 2048)}
    # The flag still wins over the file.
    fake.requests.clear()
    assert run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-q", "-m", "other").exit_code == 0
    assert {r["body"]["model"] for r in fake.requests} == {"other"}


def test_every_command_with_a_check_limit_gets_the_tests_roomy_one() -> None:
    """conftest gives every command with --check-timeout minutes per check (through its
    environment variable): a command added later is in its list too."""
    cli.load_all()
    found = set()
    groups: list[click.Group] = [cli]
    while groups:
        for command in groups.pop().commands.values():
            if isinstance(command, click.Group):
                groups.append(command)
                continue
            found |= {
                str(param.envvar)
                for param in command.params
                if isinstance(param, click.Option) and "--check-timeout" in param.opts
                if param.envvar
            }
    expected = {f"LEMAGEN_{name.upper()}_CHECK_TIMEOUT" for name in CHECKING_COMMANDS}
    assert found == expected
    assert {os.environ[name] for name in expected} == {str(CHECK_TIMEOUT)}
