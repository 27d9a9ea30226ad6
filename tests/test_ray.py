"""lemagen.ray on a local Ray instance (2 CPUs): sample, correct and filter mapped over a
`ray.data.Dataset` against the loopback server write the records the commands write, set-aside
rows travel to the end, `grade` gives the same lines as `lemagen grade`, and the Ray
example runs (its endpoints pointed at the loopback server)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CHECK_TIMEOUT,
    EXAMPLES,
    ROOT,
    known_answers,
    load_jsonl,
    records,
    run,
    write_jsonl,
)
from tests.fake_openai import FakeOpenAI, MathTutor

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lemagen[ray]')")
lemagen_ray = pytest.importorskip("lemagen.ray")
pytestmark = [
    # Ray warns about its own deprecated settings while it reads them (ray/data/context.py).
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    pytest.mark.slow,
    # One local Ray instance at a time: under `-n 2 --dist loadgroup` every test here (and in
    # test_one_path) runs in the same worker, so no two instances run at once.
    pytest.mark.xdist_group("ray"),
]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOpenAI]:
    """A local Ray instance whose workers see the loopback server as OPENAI_BASE_URL and keep
    their request store in a temporary directory (the workers' environment is fixed when Ray
    starts, before any test's own)."""
    home = tmp_path_factory.mktemp("ray")
    server = FakeOpenAI(
        MathTutor(known_answers(EXAMPLES / "gsm8k.jsonl")), json_responder=None
    ).start()
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "LEMAGEN_CACHE_DIR": str(home / "lemagen-cache"),
    }
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
        _node_ip_address="127.0.0.1",  # nothing but loopback
    )
    yield server
    ray.shutdown()
    server.stop()


def lines(ds: Any) -> list[str]:
    """The records and rejects of a map_stage output (not its batch report rows)."""
    return sorted(row["record"] for row in ds.take_all() if row["report"] is None)


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows)


def test_ray_pipeline_writes_the_records_the_commands_write(
    local_ray: FakeOpenAI, tmp_path: Path
) -> None:
    fake = local_ray
    before = len(fake.requests)
    cache = str(tmp_path / "store")
    endpoint = {"base_url": fake.base_url, "cache_dir": cache}
    problems = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    problems.insert(3, {"question": "A problem without its answer"})
    ds = ray.data.from_items(problems)
    small = {"actors": 1, "num_cpus": 0.25, "batch_size": 4}
    # Materialized once: the comparison with the command below reads it again, and a lazy
    # dataset would start a new sampling actor for that (seconds on a loaded machine).
    # Chaining lazily is what the docs/scale.md example does (test_docs_ray_example_runs).
    samples = lemagen_ray.map_stage(ds, "sample", model="m", n=4, **small, **endpoint)
    samples = samples.materialize()
    corrections = lemagen_ray.map_stage(samples, "correct", model="c", **small, **endpoint)
    train = lemagen_ray.map_stage(corrections, "filter", **small).materialize()

    kept = lines(lemagen_ray.kept(train))
    set_aside = [json.loads(line) for line in lines(lemagen_ray.rejects(train))]
    assert len(kept) == 10
    assert [r["reason"] for r in set_aside] == ["missing_field"]
    assert set_aside[0]["record"] == {"question": "A problem without its answer"}
    sent = len(fake.requests) - before
    assert sent == 20  # 10 problems sampled (n=4 in one request), 10 corrections

    src = write_jsonl(tmp_path / "problems.jsonl", problems)
    cli = ["--base-url", fake.base_url, "--cache-dir", cache, "-q"]
    cli_samples = run("sample", str(src), "-m", "m", "-n", "4", "--skip-bad-rows", *cli)
    cli_corrections = run("correct", "-m", "c", *cli, input=cli_samples.stdout)
    cli_train = run("filter", "-q", input=cli_corrections.stdout)
    assert len(fake.requests) - before == sent  # the workers' store served the commands
    assert canonical(records(cli_train)) == kept
    ray_samples = lines(lemagen_ray.kept(samples))
    assert canonical(records(cli_samples)) == ray_samples


@pytest.mark.usefixtures("local_ray")
def test_ray_grade_gives_the_lines_of_lemagen_grade(tmp_path: Path) -> None:
    rows = [
        {
            "question": f"q{k}",
            "answer": f"\\boxed{{\\frac{{{k}}}{{{k + 1}}}}}",
            "response": f"So it is $\\boxed{{\\frac{{{2 * k}}}{{{2 * k + 2 + (k % 3 == 0)}}}}}$.",
        }
        for k in range(1, 25)
    ]
    path = write_jsonl(tmp_path / "outputs.jsonl", rows)
    expected = run("grade", str(path), "--task", "math", "--workers", "1", "-q")
    graded = lemagen_ray.map_stage(
        ray.data.from_items(rows), "grade", task="math", workers=1, num_cpus=0.5, batch_size=8,
        check_timeout=CHECK_TIMEOUT,  # as the command's (conftest): no check may run out of time
    )  # fmt: skip
    got = lines(graded)
    assert len(got) == 24
    assert got == sorted(expected.stdout.splitlines())
    assert sum('"verdict":"wrong"' in line for line in got) == 8


def test_docs_ray_example_runs(
    local_ray: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- ray-example:start -->\n```python\n(.*?)```\n<!-- ray-example:end -->", text, re.S
    )
    assert block is not None, "docs/scale.md lost its Ray example"
    code = re.sub(r"http://gpu-\d:8000/v1", local_ray.base_url, block.group(1))
    assert code.count(local_ray.base_url) == 2
    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLES / "gsm8k.jsonl", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/scale.md", "exec"), {})
    assert out.getvalue() == "0 rows set aside\n"
    written = load_jsonl(tmp_path / "lema.jsonl")
    assert len(written) == 10
    assert all(set(row) == {"prompt", "completion"} for row in written)
