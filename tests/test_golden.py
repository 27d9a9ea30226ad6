"""Nothing changes for users: a fixed pipeline over every command (`tests/golden.py`) writes
exactly the bytes committed in `tests/data/golden/`, written by main before the typed-records
refactor and since changed only on purpose (schema version 3: records state their `kind`). A
deliberate change of output regenerates them (`python -m tests.golden tests/data/golden`) in
the same commit, so the diff shows what users will see change."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DATA
from tests.golden import run_pipeline, start_server

GOLDEN = DATA / "golden"


def test_every_output_is_byte_for_byte_what_main_wrote(tmp_path: Path) -> None:
    fake = start_server()
    try:
        names = run_pipeline(fake, tmp_path / "out")
    finally:
        fake.stop()
    expected = sorted(p.name for p in GOLDEN.iterdir())
    assert len(expected) >= 90
    assert names == expected
    differ = [
        name
        for name in names
        if (tmp_path / "out" / name).read_bytes() != (GOLDEN / name).read_bytes()
    ]
    assert differ == []
    # The pipeline is not trivially empty: every stage wrote rows (sharegpt went to -o, and no
    # request failed, so those two are empty by design).
    empty = [n for n in names if n.endswith(".jsonl") and not (GOLDEN / n).read_bytes()]
    assert sorted(empty) == [
        f"{task}.{name}.jsonl"
        for task in ("gsm8k", "math")
        for name in ("correct.rejects", "export-sharegpt")
    ]
