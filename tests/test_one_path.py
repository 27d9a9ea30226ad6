"""One run, one path: the CLI, the Python API and lemagen.ray run a stage through the same
loop (`lemagen.run`), synchronously and with --batch, so the same inputs and the same budget
give the same records, the same rows set aside and the same rows not read, whichever front end
runs them; and every input row is accounted for (read, unreadable, not read).

Budgets stop deterministically here: one request at a time (`concurrency` 1), so the request
that does not fit is always the same one. With at most `max_pending` rows (18 at concurrency
1) every row is read at once; with more, and a budget smaller than one request's worst case,
exactly the first 18 are read and the rest are not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lemagen
from tests.conftest import DATA, known_answers, load_jsonl, run, write_jsonl
from tests.fake_batches import FakeBatches
from tests.fake_openai import FakeOpenAI, MathTutor

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lemagen[ray]')")
lemagen_ray = pytest.importorskip("lemagen.ray")
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    pytest.mark.slow,
    pytest.mark.xdist_group("ray"),  # one local Ray instance at a time (as tests/test_ray.py)
]

PROBLEMS = load_jsonl(DATA / "gsm8k_train_slice.jsonl")  # 40 GSM8K train problems
# Each request's worst case: 40 tokens out at $1 per 1,000 = $0.04 (no price for input); the
# tutor's answers cost about a third of that.
PRICED = {"max_tokens": 40, "price_in": 0.0, "price_out": 1000.0, "concurrency": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOpenAI]:
    """One loopback server for the three front ends, and a local Ray instance whose workers
    reach it (their environment is fixed when Ray starts)."""
    fake = FakeOpenAI(MathTutor(known_answers(DATA / "gsm8k_train_slice.jsonl"))).start()
    FakeBatches.on(fake, auto=True)
    home = tmp_path_factory.mktemp("ray")
    # Ray gives its node 30 s to register, fixed in its code; on a machine busy enough to
    # miss that (or still stopping the previous module's instance), try again.
    for attempt in range(3):
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"LEMAGEN_CACHE_DIR": str(home / "cache")}},
                _node_ip_address="127.0.0.1",  # nothing but loopback
            )
            break
        except Exception:  # Ray raises a bare Exception for this; re-raised at the last try
            ray.shutdown()
            if attempt == 2:
                raise
    yield fake
    ray.shutdown()
    fake.stop()


def canonical(lines: list[str]) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines)


def three_ways(
    server: FakeOpenAI, tmp_path: Path, rows: list[dict[str, Any]], options: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The same `sample` run by the command, the API and Ray (one actor, one batch), each on
    a request store of its own (so each pays for what it reads): kept records, rows set aside
    (as --rejects lines), rows not read, the exit code."""
    options = {"model": "r", "n": 1, "keep": "all", "base_url": server.base_url, **options}
    out: dict[str, dict[str, Any]] = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_jsonl(tmp_path / "problems.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    flags = []
    for name, value in options.items():
        flag = "-n" if name == "n" else "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, str(value)]
    cli = run("sample", str(path), *flags, "--cache-dir", str(tmp_path / "cli"),
              "--rejects", str(rejects))  # fmt: skip
    summary = [line for line in cli.stderr.splitlines() if line.startswith("input rows:")]
    out["cli"] = {
        "kept": canonical(cli.stdout.splitlines()),
        "set aside": canonical(rejects.read_text(encoding="utf-8").splitlines()),
        "not read": int(summary[0].split(" + ")[-1].split()[0]) if summary else 0,
        "exit": cli.exit_code,
    }

    api = lemagen.sample(rows, cache_dir=str(tmp_path / "api"), **options)
    out["api"] = {
        "kept": canonical([json.dumps(d) for d in api.dicts()]),
        "set aside": canonical([json.dumps(r.to_dict()) for r in api.rejects]),
        "not read": len(api.unread),
        "exit": api.exit_code,
    }
    assert api.report.rows == len(rows)  # every input row accounted for

    ds = ray.data.from_items(rows)
    mapped = lemagen_ray.map_stage(
        ds, "sample", actors=1, batch_size=len(rows), num_cpus=0.5,
        cache_dir=str(tmp_path / "ray"), **options,
    ).materialize()  # fmt: skip
    got = [row for row in mapped.take_all() if row["report"] is None]
    report = lemagen_ray.report(mapped)
    out["ray"] = {
        "kept": canonical([r["record"] for r in got if r["reason"] is None]),
        "set aside": canonical(
            [r["record"] for r in got if r["reason"] not in (None, lemagen_ray.NOT_READ)]
        ),
        "not read": sum(r["reason"] == lemagen_ray.NOT_READ for r in got),
        "exit": report["exit_code"],
    }
    assert report["rows_read"] + report["bad_rows"] + report["rows_unread"] == len(rows)
    return out


def test_a_budget_that_stops_midway_gives_the_same_rows_on_every_front_end(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """12 problems, all read at once; $0.10 pays for the requests while spent plus one worst
    case ($0.04) fits, then the rest are set aside as budget_exhausted."""
    got = three_ways(server, tmp_path, PROBLEMS[:12], PRICED | {"max_cost": 0.10})
    cli = got["cli"]
    assert cli["exit"] == 5
    assert 2 <= len(cli["kept"]) < 12  # stopped midway: some paid for, some not
    reasons = {json.loads(line)["reason"] for line in cli["set aside"]}
    assert reasons == {"budget_exhausted"}
    assert len(cli["kept"]) + len(cli["set aside"]) == 12
    assert cli["not read"] == 0
    assert got["api"] == cli
    assert got["ray"] == cli


def test_rows_not_read_are_the_same_rows_on_every_front_end(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """30 problems and a budget under one request's worst case: the first 18 rows (what the
    engine reads ahead at concurrency 1) are set aside as budget_exhausted, and 12 are not
    read: the command counts them, the API returns them, Ray hands them back as not_read."""
    got = three_ways(server, tmp_path, PROBLEMS[:30], PRICED | {"max_cost": 0.01})
    cli = got["cli"]
    assert cli["exit"] == 5
    assert cli["kept"] == []
    assert len(cli["set aside"]) == 18
    assert cli["not read"] == 12
    assert got["api"] == cli
    assert got["ray"] == cli


def test_a_batch_run_under_a_budget_gives_the_same_rows_on_every_front_end(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """--batch: a batch line's worst case at the batch price (half) is $0.02, so $0.05 submits
    two of the twelve lines; the last pass sets the other ten aside as budget_exhausted, and
    the run exits 5, as a synchronous one does."""
    batch = PRICED | {"max_cost": 0.05, "batch": True, "wait": True, "poll_interval": 0}
    got = three_ways(server, tmp_path, PROBLEMS[:12], batch)
    cli = got["cli"]
    assert cli["exit"] == 5
    assert len(cli["kept"]) == 2
    assert len(cli["set aside"]) == 10
    assert {json.loads(line)["reason"] for line in cli["set aside"]} == {"budget_exhausted"}
    assert got["api"] == cli
    assert got["ray"] == cli


def test_a_synchronous_and_a_batch_run_write_the_same_records(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """Without a budget, all three front ends, synchronous or --batch, write the same."""
    sync = three_ways(server, tmp_path / "sync", PROBLEMS[:6], {"concurrency": 1})
    batch = three_ways(
        server, tmp_path / "batch", PROBLEMS[:6], {"batch": True, "wait": True, "poll_interval": 0}
    )
    assert sync["cli"]["exit"] == 0
    assert len(sync["cli"]["kept"]) == 6
    for front in ("cli", "api", "ray"):
        assert sync[front] == sync["cli"]
        assert batch[front] == sync["cli"]


def test_ray_holds_one_budget_across_its_actors_and_accounts_for_every_row(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """200 problems on 2 actors with max_cost $0.30: the job spends at most $0.30 (each actor
    $0.15), and every input row comes back kept, set aside or not read; report(ds) adds up.
    (How much of the second share is spent is Ray's scheduling: on a busy machine one actor
    can take every block, and set aside what its share does not pay for, before the other
    has started.)"""
    rows = [
        {"question": f"Sam has {i} apples and buys {i} more. How many?", "answer": f"#### {2 * i}"}
        for i in range(200)
    ]
    served = len(server.served)
    billed = server.billed_completion_tokens
    mapped = lemagen_ray.map_stage(
        ray.data.from_items(rows), "sample", model="r", n=1, keep="all",
        base_url=server.base_url, cache_dir=str(tmp_path / "ray"), actors=2, batch_size=50,
        num_cpus=0.5, max_cost=0.30, **{k: v for k, v in PRICED.items() if k != "max_cost"},
    ).materialize()  # fmt: skip
    report = lemagen_ray.report(mapped)
    paid = len(server.served) - served
    spent = (server.billed_completion_tokens - billed) / 1000  # $1 per 1,000 tokens out
    assert 0.10 < spent <= 0.30  # at least one actor's share was used, never more than both
    assert report["cost"] == pytest.approx(spent)
    assert report["exit_code"] == 5
    assert report["rows_read"] + report["bad_rows"] + report["rows_unread"] == 200
    data = [row for row in mapped.take_all() if row["report"] is None]
    kept = [r for r in data if r["reason"] is None]
    unread = [r for r in data if r["reason"] == lemagen_ray.NOT_READ]
    assert len(unread) == report["rows_unread"]
    assert len(kept) == paid  # n=1: one record per request paid for
    # every input row is in the output once: by its question
    questions = sorted(
        json.loads(r["record"]).get("question") or json.loads(r["record"])["record"]["question"]
        for r in data
    )
    assert questions == sorted(row["question"] for row in rows)
