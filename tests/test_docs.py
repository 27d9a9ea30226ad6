"""The README, the pages of docs/ and the examples are exercised, not just shown: their
commands run, their links lead somewhere, and nothing points outside the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lemagen.cli import cli
from tests.conftest import EXAMPLES, ROOT, load_jsonl
from tests.fake_openai import FakeOpenAI
from tests.mistake_models import MistakeModels

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))


def doc(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


def _env(fake: FakeOpenAI) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["OPENAI_BASE_URL"] = fake.base_url
    return env


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def test_readme_quickstart_runs_against_a_loopback_server(fake: FakeOpenAI, tmp_path: Path) -> None:
    section = README.split("<!-- quickstart:start -->", 1)[1].split("<!-- quickstart:end -->", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    assert blocks[0].startswith("lemagen inject"), "the first quickstart command runs offline"
    work = _workdir(tmp_path)
    for block in blocks:
        # The endpoint is the loopback server; everything else runs exactly as written.
        script = "\n".join(
            line for line in block.splitlines() if not line.startswith("export OPENAI_BASE_URL=")
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=_env(fake),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "filter: in" in done.stderr
    for name, task_hint, count in (
        ("lema-offline.jsonl", "Natalia", 20),
        ("lema.jsonl", "Natalia", 10),
        ("lema-math.jsonl", "$", 10),
    ):
        rows = load_jsonl(work / name)
        assert len(rows) == count
        assert all(set(r) == {"prompt", "completion"} for r in rows)
        assert all(r["prompt"].endswith("\n}\nIncorrect Step:") for r in rows)
        assert any(task_hint in r["prompt"] for r in rows)
    # The API key given in the quickstart is not written anywhere.
    for path in work.glob("*.jsonl"):
        assert "sk-..." not in path.read_text(encoding="utf-8")


def test_examples_pipeline_script(fake: FakeOpenAI, tmp_path: Path) -> None:
    work = _workdir(tmp_path)
    env = {**_env(fake), "REASONER": "r", "CORRECTOR": "c", "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(work / "examples" / "pipeline.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for task in ("gsm8k", "math"):
        assert len(load_jsonl(tmp_path / "out" / f"{task}.lema.jsonl")) == 10


def test_examples_mistakes_script(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The analysers, teachers and askers of tests/mistake_models.py answer; the report holds
    the error-type distribution of the examples' wrong samples."""
    fake.responder = MistakeModels(fake.responder)  # type: ignore[arg-type]
    work = _workdir(tmp_path)
    out = tmp_path / "out"
    env = {**_env(fake), "REASONER": "r", "ANALYSER": "a", "OUT": str(out)}
    done = subprocess.run(
        ["bash", str(work / "examples" / "mistakes.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    analysis = load_jsonl(out / "analysis.jsonl")
    analysed = [r for r in analysis if "error_type" in r]
    assert len(analysed) == 20  # one wrong path per problem (the tutor's)
    types = json.loads((out / "report.json").read_text())["error_types_by_reasoner"]["r"]
    assert types["analysed"] == 20
    assert sum(t["count"] for t in types["types"].values()) == 20
    assert (out / "report.html").read_text().count('id="error-types"') == 1
    taught = load_jsonl(out / "taught.jsonl")
    assert len(taught) == 20  # 10 problems, 2 mistakes each
    assert {t["meta"]["injected_error_type"] for t in taught} <= set(types["types"])
    assert 0 < len(load_jsonl(out / "taught.lema.jsonl")) <= 20
    # Per problem: the tutor's 2 right samples and its 1 wrong path (identical ones kept once).
    assert len(load_jsonl(out / "asker.jsonl")) == 40 + 20
    assert len(load_jsonl(out / "truster.jsonl")) == 20


def test_every_command_is_documented() -> None:
    cli.load_all()
    assert len(cli.commands) == 13
    for name in cli.commands:
        assert f"`lemagen {name}`" in README, name


def test_readme_test_command_is_what_ci_runs() -> None:
    """The command in the README's Development block is the one .ci/run runs, word for word
    (CI only points TMPDIR at its own temporary directory)."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    block = README.split("\n## Development\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    (command,) = [line for line in block.splitlines() if line.startswith("python -m pytest")]
    (ran,) = [line for line in ci.splitlines() if "python -m pytest" in line]
    assert ran.endswith(command)
    assert ran.removesuffix(command).strip() in ("", "TMPDIR=$work/tmp")
    assert f"`{command}` is the test command" in README


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lemagen", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("lemagen, version ")


def test_docs_formats_example(fake: FakeOpenAI, tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    section = (
        doc("formats.md").split("<!-- formats:start -->", 1)[1].split("<!-- formats:end -->", 1)[0]
    )
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert "hf:openai/gsm8k:main:train" in block
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "gsm8k-train"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    script = block.replace("hf:openai/gsm8k:main:train", "gsm8k-train")  # no network in tests
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=_env(fake), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(load_jsonl(tmp_path / "lema-offline.jsonl")) >= len(rows)
    samples = pq.read_table(tmp_path / "samples.parquet")
    assert samples.num_rows >= 10
    kept = pq.read_table(tmp_path / "lema.parquet").to_pylist()
    assert len(kept) >= 5
    assert all(set(r) == {"prompt", "completion"} for r in kept)


def test_readme_dry_run_runs_offline(tmp_path: Path) -> None:
    """The README's --dry-run example needs no endpoint and no key: nothing is sent."""
    section = README.split("<!-- dry-run:start -->", 1)[1].split("<!-- dry-run:end -->", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    work = _workdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Nothing was sent." in done.stderr
    requests = load_jsonl(work / "requests.jsonl")
    assert len(requests) == 10
    assert all(r["body"]["n"] == 4 for r in requests)


def test_readme_is_an_introduction() -> None:
    """The README gets a newcomer running; the manual is in docs/ (issue 25)."""
    assert len(README.splitlines()) <= 250
    for page in DOCS:
        assert f"(docs/{page.name}" in README, f"the README's map lacks docs/{page.name}"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_of_the_documentation_leads_somewhere() -> None:
    """Relative links name files in the repository, and their #anchors headings there; no
    reference to a text the repository does not hold (a methods file, its sections, notes)."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS]
    checked = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "methods.md" not in text, page
        assert "\u00a7" not in text, page  # section signs point into a text not here
        assert "notes on issue" not in text, page
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in _anchors(file.read_text(encoding="utf-8")), (
                    f"{page.name}: {target}"
                )
            checked += 1
    assert checked > 40


def test_the_cli_reference_is_the_help_of_every_command(tmp_path: Path) -> None:
    """docs/cli.md is generated from --help; regenerate it with `python -m lemagen.cli.docs -o
    docs/cli.md` after changing a command or an option."""
    from lemagen.cli.docs import main, reference

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == reference(), "docs/cli.md is stale: python -m lemagen.cli.docs -o docs/cli.md"
    cli.load_all()
    for name, command in cli.commands.items():
        assert f"## `lemagen {name}`" in page, name
        assert (command.help or "").split("\n", 1)[0].split()[0] in page
    assert "## `lemagen art ask`" in page
    assert main(["--check", str(ROOT / "docs" / "cli.md")]) == 0
    stale = tmp_path / "cli.md"
    stale.write_text(page.replace("--max-tokens", "--max-tokenz", 1), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
