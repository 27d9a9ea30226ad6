"""The record types: every record lemagen writes reads back to the same bytes, records written
before `schema_version` existed still load, and every bad field is one `file:line` error."""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lemagen.errors import InputError
from lemagen.records import (
    SCHEMA_VERSION,
    Correction,
    Original,
    Provenance,
    Reject,
    RetryText,
    Sample,
    Verdict,
    fast,
    kind_of,
    read_any,
    read_sample_or_correction,
    read_training,
)
from lemagen.records.jsonl import _dumps
from lemagen.records.rows import Rejects, iter_rows
from lemagen.records.shape import OrNull, Shape, WhenSet, layout
from tests.conftest import DATA, ROOT, load_jsonl

GOLDEN = DATA / "golden"


def _lines(*names: str) -> list[dict[str, Any]]:
    return [row for name in names for row in load_jsonl(GOLDEN / name)]


@pytest.mark.parametrize(
    ("files", "kind", "least"),
    [
        (["gsm8k.sample.jsonl", "math.sample.jsonl"], Sample, 200),
        (["gsm8k.correct.jsonl", "math.correct.jsonl", "inject.jsonl"], (Correction, Sample), 200),
        (["inject-retry.jsonl", "inject-retry-fake.jsonl"], RetryText, 40),
        (["gsm8k.filter.rejects.jsonl", "math.sample.rejects.jsonl"], Reject, 50),
    ],
)
def test_every_written_record_reads_back_to_the_same_bytes(
    files: list[str], kind: type | tuple[type, ...], least: int
) -> None:
    rows = _lines(*files)
    assert len(rows) >= least
    for i, row in enumerate(rows, 1):
        record = read_any(row, f"golden:{i}")
        assert isinstance(record, kind)
        assert _dumps(record.to_dict()) == _dumps(row)
        assert read_any(record.to_dict(), "again:1") == record


def test_a_samples_duplicates_read_back_and_travel_into_its_correction() -> None:
    """`meta.duplicates` (the identical wrong samples `sample` dropped after this one) is
    written only when set, after the request fields, and kept in a correction's original."""
    row = next(r for r in _lines("gsm8k.sample.jsonl") if r["verdict"] == "wrong")
    assert "duplicates" not in row["meta"]
    row["meta"]["duplicates"] = 2
    sample = read_any(row, "s:1")
    assert isinstance(sample, Sample)
    assert _dumps(sample.to_dict()) == _dumps(row)
    assert list(sample.to_dict()["meta"])[-1] == "duplicates"
    correction = next(r for r in _lines("gsm8k.correct.jsonl") if "correction_id" in r)
    correction["original"]["meta"]["duplicates"] = 3
    read = read_any(correction, "c:1")
    assert isinstance(read, Correction)
    assert read.original.meta.to_dict()["duplicates"] == 3
    assert _dumps(read.to_dict()) == _dumps(correction)


@pytest.mark.parametrize(
    "name",
    [
        "gsm8k.export-lema.jsonl",
        "gsm8k.export-alpaca.jsonl",
        "gsm8k.sharegpt.jsonl",
        "math.sharegpt.jsonl",
        "gsm8k.export-openai.jsonl",
        "gsm8k.export-openai-dpo.jsonl",
        "gsm8k.export-dpo.jsonl",
        "gsm8k.export-trl-chat.jsonl",
        "gsm8k.export-prm.jsonl",
        "math.export-math-shepherd.jsonl",
        "gsm8k.filter.jsonl",
    ],
)
def test_training_rows_read_back_to_the_same_bytes(name: str) -> None:
    rows = load_jsonl(GOLDEN / name)
    assert rows, name
    for i, row in enumerate(rows, 1):
        assert _dumps(read_training(row, f"{name}:{i}").to_dict()) == _dumps(row)


def test_a_training_row_keeps_the_columns_it_was_tagged_with() -> None:
    """`export --keep-fields` adds problem fields beside a trainer's own: a row read back keeps
    them, after its own keys; a row's `id` and `kind` (`filter --with-meta`) only when set."""
    row = {"prompt": "Q", "completion": "A", "level": "Level 3", "type": "Algebra"}
    read = read_training(row, "f:1")
    assert read.to_dict() == row
    assert list(read.to_dict()) == list(row)
    assert read_training({"prompt": "Q", "completion": "A"}, "f:2").to_dict() == {
        "prompt": "Q",
        "completion": "A",
    }
    alpaca = {"instruction": "Q", "input": "", "output": "A", "id": "p1"}
    assert list(read_training(alpaca, "f:3").to_dict()) == ["instruction", "input", "output", "id"]


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        # from main before the typed records: no `schema_version`
        ("records-v1.jsonl", {"Sample", "Correction", "RetryText", "Reject"}),
        # from main before records stated their kind: no `kind`, every record type
        (
            "records-v2.jsonl",
            {
                "Sample",
                "Correction",
                "RetryText",
                "Reject",
                "Analysis",
                "AskerRecord",
                "TrusterRecord",
            },
        ),
    ],
)
def test_records_of_earlier_versions_still_load(name: str, kinds: set[str]) -> None:
    """Records written by earlier versions (no `kind`, or no `schema_version` either) read as
    their kind, known from their keys, and write back the same bytes with their kind first
    and the current version last."""
    rows = load_jsonl(DATA / name)
    seen = set()
    for i, row in enumerate(rows, 1):
        assert "kind" not in row
        record = read_any(row, f"{name}:{i}")
        seen.add(type(record).__name__)
        written = record.to_dict()
        assert next(iter(written)) == "kind"
        assert written.pop("kind") == kind_of(row)
        assert list(written)[-1] == "schema_version"
        assert written.pop("schema_version") == SCHEMA_VERSION
        assert _dumps(written) == _dumps({k: v for k, v in row.items() if k != "schema_version"})
        # written now, it states its kind, and reads back as the same record
        assert kind_of(record.to_dict()) == kind_of(row)
        assert read_any(record.to_dict(), "again:1").to_dict() == record.to_dict()
    assert seen == kinds


def test_a_record_is_read_as_the_kind_it_states() -> None:
    """From schema version 3 a record's `kind` says what it is, whatever keys it holds; an
    earlier record's kind is known from its keys, and a key `kind` of a training row (`filter
    --with-meta`) or of an earlier record is no record kind."""
    sample = _sample()
    assert (sample["kind"], sample["schema_version"]) == ("sample", SCHEMA_VERSION)
    # a key only corrections have does not make a sample that says so a correction
    odd = {**sample, "correction_id": "x-c0"}
    read = read_any(odd, "f:1")
    assert isinstance(read, Sample)
    assert read.extra == {"correction_id": "x-c0"}
    # written before kinds: the same keys make it a correction
    old = {k: v for k, v in odd.items() if k != "kind"} | {"schema_version": 2}
    assert kind_of(old) == "correction"
    # a training row's own `kind`
    row = {"prompt": "Q", "completion": "A", "id": "p1", "kind": "correction"}
    assert kind_of(row) == "training"
    assert read_any(row, "f:2").to_dict() == row
    # a version 2 sample with a `kind` key of the user's keeps it
    mine = {k: v for k, v in sample.items() if k != "kind"} | {"schema_version": 2}
    mine["kind"] = "hard"
    assert Sample.from_dict(mine, "f:3").extra == {"kind": "hard"}


def test_a_record_of_another_kind_is_one_line_naming_both() -> None:
    with pytest.raises(InputError) as err:
        Sample.from_dict(_correction(), "runs/c.jsonl:4", strict=True)
    assert err.value.format_message() == (
        "runs/c.jsonl:4: a correction record, not a sample record "
        "(is this `lemagen sample` output?)"
    )
    assert err.value.reason == "bad_record"


def test_unknown_fields_travel_after_the_known_ones() -> None:
    [row] = load_jsonl(GOLDEN / "gsm8k.sample.jsonl")[:1]
    mine = {**row, "reviewer": "ann", "meta": {**row["meta"], "batch": 7}}
    out = Sample.from_dict(mine, "f:1").to_dict()
    assert out["reviewer"] == "ann"
    assert out["meta"]["batch"] == 7
    assert next(iter(out)) == "kind"
    assert list(out)[-2:] == ["reviewer", "schema_version"]
    assert list(out["meta"])[-1] == "batch"


def _sample() -> dict[str, Any]:
    return load_jsonl(GOLDEN / "gsm8k.sample.jsonl")[0]


def _correction() -> dict[str, Any]:
    return next(r for r in load_jsonl(GOLDEN / "gsm8k.correct.jsonl") if "correction_id" in r)


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    target = out
    for name in parents:
        target = target[name]
    if value is _DELETE:
        target.pop(last, None)
    else:
        target[last] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("base", "path", "value", "message", "reason"),
    [
        (_sample, "steps", 0, "field 'steps' must be a list, not a whole number", "bad_row"),
        (_sample, "steps", [1, 2], "field 'steps[0]' must be text, not a whole number", "bad_row"),
        (_sample, "verdict", [], "field 'verdict' must be text, not a list", "bad_row"),
        (_sample, "verdict", "great", "field 'verdict' must be one of correct, wrong", "bad_row"),
        (_sample, "verdict", _DELETE, "missing field 'verdict'", "missing_field"),
        (_sample, "task", "chess", "unknown task 'chess'", "unknown_task"),
        (_sample, "question", 5, "field 'question' must be text, not a whole number", "bad_row"),
        (_sample, "meta", "x", "field 'meta' must be an object or null, not text", "bad_row"),
        (
            _sample,
            "meta.usage",
            {"prompt_tokens": -3},
            "field 'meta.usage[...]' must be a whole number >= 0",
            "bad_row",
        ),
        (
            _sample,
            "meta.usage",
            {"prompt_tokens": "9"},
            "field 'meta.usage[...]' must be a whole number, not text",
            "bad_row",
        ),
        (
            _sample,
            "meta.duplicates",
            -1,
            "field 'meta.duplicates' must be a whole number >= 0",
            "bad_row",
        ),
        (
            _sample,
            "meta.seed",
            1.5,
            "field 'meta.seed' must be a whole number or null, not a number",
            "bad_row",
        ),
        (_correction, "original", [], "field 'original' must be an object, not a list", "bad_row"),
        (
            _correction,
            "original.steps",
            "x",
            "field 'original.steps' must be a list, not text",
            "bad_row",
        ),
        (
            _correction,
            "original.meta.usage",
            {"x": 1.5},
            "field 'original.meta.usage[...]' must be a whole number",
            "bad_row",
        ),
        (
            _correction,
            "incorrect_step",
            "3",
            "field 'incorrect_step' must be a whole number or null, not text",
            "bad_row",
        ),
        (
            _correction,
            "incorrect_step",
            True,
            "field 'incorrect_step' must be a whole number or null, not true/false",
            "bad_row",
        ),
        (
            _correction,
            "elided",
            "yes",
            "field 'elided' must be true or false or null, not text",
            "bad_row",
        ),
        (
            _correction,
            "corrected_steps",
            _DELETE,
            "missing field 'corrected_steps'",
            "missing_field",
        ),
    ],
)
def test_every_bad_field_is_one_line_naming_the_place(
    base: Any, path: str, value: Any, message: str, reason: str
) -> None:
    with pytest.raises(InputError) as err:
        read_any(_with(base(), path, value), "runs/x.jsonl:12")
    text = err.value.format_message()
    assert text.startswith(f"runs/x.jsonl:12: {message}")
    assert "\n" not in text
    assert err.value.reason == reason


def test_not_a_record() -> None:
    with pytest.raises(InputError, match=r"^f.jsonl:2: not a lemagen record") as err:
        read_any({"hello": 1}, "f.jsonl:2")
    assert err.value.reason == "bad_record"


def test_records_are_frozen() -> None:
    record = Sample.from_dict(_sample(), "f:1")
    with pytest.raises(AttributeError):
        record.verdict = "correct"  # type: ignore[misc]


# ---------------------------------------------------------------- one-pass reading


def _raw_lines(*names: str) -> list[bytes]:
    return [
        line for name in names for line in (GOLDEN / name).read_bytes().splitlines() if line.strip()
    ]


@pytest.mark.parametrize(
    ("files", "least", "kinds"),
    [
        (["gsm8k.sample.jsonl", "math.sample.jsonl"], 200, 1),
        # corrections (a model's and made mistakes') and the samples `correct` passed on
        (["gsm8k.correct.jsonl", "math.correct.jsonl", "inject.jsonl"], 200, 3),
    ],
)
def test_lemagens_own_lines_read_in_one_pass_as_the_general_reading_does(
    files: list[str], least: int, kinds: int
) -> None:
    lines = _raw_lines(*files)
    assert len(lines) >= least
    seen = set()
    for i, raw in enumerate(lines, 1):
        slow = read_sample_or_correction(json.loads(raw), f"golden:{i}")
        quick = fast.sample_or_correction(raw)  # never falls back on what lemagen wrote
        assert quick == slow
        seen.add((type(quick).__name__, quick.meta.stage))
    assert len(seen) == kinds


def test_lines_of_schema_version_2_read_in_one_pass_too() -> None:
    """Samples and corrections written before records stated their kind read in one pass as
    the kind their keys say (a made mistake's too), as the general reading reads them."""
    lines = [
        line
        for line in (DATA / "records-v2.jsonl").read_bytes().splitlines()
        if kind_of(json.loads(line)) in ("sample", "correction") and b"reviewer" not in line
    ]
    seen = set()
    for i, raw in enumerate(lines, 1):
        quick = fast.sample_or_correction(raw)  # never falls back
        assert quick == read_sample_or_correction(json.loads(raw), f"v2:{i}")
        seen.add((type(quick).__name__, quick.meta.stage))
    assert seen == {("Sample", "sample"), ("Correction", "correct"), ("Correction", "inject")}


def _mutants(rng: random.Random, base: dict[str, Any], count: int) -> list[bytes]:
    """`base` with one key added, deleted or given another value, at any depth."""
    paths: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            paths.append(prefix + key)
            if isinstance(value, dict):
                walk(value, prefix + key + ".")

    walk(base, "")
    values: list[Any] = [_DELETE, None, 0, -1, 2.5, True, "", "x", "inject", [], ["s"], {}]
    out = []
    for _ in range(count):
        path = rng.choice(paths)
        if rng.random() < 0.2:  # a key lemagen does not know, beside `path`
            path = path.rsplit(".", 1)[0] + ".extra" if "." in path else "reviewer"
        row = _with(base, path, rng.choice(values))
        compact = rng.random() < 0.7
        out.append(json.dumps(row, separators=(",", ":") if compact else None).encode())
    return out


def _read_all(path: Path, *, one_pass: bool) -> tuple[list[Any], list[str | None]]:
    rejects = Rejects(None)
    seen: list[str | None] = []
    original = rejects.add

    def add(item: Any) -> None:
        seen.append(item.detail)
        original(item)

    rejects.add = add  # type: ignore[method-assign]
    rows = list(
        iter_rows(
            str(path),
            read_sample_or_correction,
            skip_bad_rows=True,
            rejects=rejects,
            fast=fast.sample_or_correction if one_pass else None,
        )
    )
    return rows, seen


def test_one_pass_reading_falls_back_to_the_same_record_or_error(tmp_path: Path) -> None:
    """Two thousand records broken or extended anywhere (an unknown key in `meta` or in
    `original.meta`, an injected mistake's meta without its stage, a wrong type, a missing
    field) read exactly as the general reading reads them: the same records, unknown keys
    kept, and the same `file:line` errors."""
    rng = random.Random(7)
    inject = load_jsonl(GOLDEN / "inject.jsonl")[0]
    bases = [_sample(), _correction(), inject]
    lines = [line for base in bases for line in _mutants(rng, base, 700)]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    slow_rows, slow_errors = _read_all(path, one_pass=False)
    quick_rows, quick_errors = _read_all(path, one_pass=True)
    assert len(slow_rows) > 800  # both kinds of line are there
    assert len(slow_errors) > 200
    assert quick_errors == slow_errors
    assert quick_rows == slow_rows
    carried = [r for r in slow_rows if r.extra or r.meta.extra]
    assert len(carried) > 50  # unknown keys reached both readers, and both kept them
    assert [r.to_dict() for r in quick_rows] == [r.to_dict() for r in slow_rows]


def test_an_unknown_key_named_extra_in_meta_is_carried() -> None:
    row = _with(_sample(), "meta.extra", {"note": 1})
    assert Sample.from_dict(row, "f:1").to_dict()["meta"]["extra"] == {"note": 1}


# ---------------------------------------------------------------- one declaration per shape


class _Inner(Shape, frozen=True, kw_only=True):
    note: str
    tags: tuple[str, ...] = ()


class _Demo(Shape, frozen=True, kw_only=True):
    name: str
    level: WhenSet[int | None] = None  # written only when set
    size: OrNull[int] = 0  # null reads as 0
    inner: OrNull[_Inner] = msgspec.field(default_factory=lambda: _Inner(note=""))
    verdict: Verdict = "wrong"


def test_a_shape_is_read_and_written_from_its_declaration_alone() -> None:
    """What a field's declaration says is all reading and writing need: its key and place,
    written only when set, null as the default, a nested shape (its own unknown keys kept),
    a Literal's values in the message, and msgspec's one-pass decoding gives the same."""
    line = {"name": "a", "size": None, "inner": {"note": "n", "tags": ["x"], "mine": 1}, "z": 2}
    demo = _Demo.from_dict(line, "f:1")
    inner = _Inner(note="n", tags=("x",), extra={"mine": 1})
    assert demo == _Demo(name="a", inner=inner, extra={"z": 2})
    written = demo.to_dict()
    assert written == {
        "name": "a",
        "size": 0,
        "inner": {"note": "n", "tags": ["x"], "mine": 1},
        "verdict": "wrong",
        "z": 2,
    }
    assert list(written) == ["name", "size", "inner", "verdict", "z"]
    assert _Demo.from_dict({**written, "level": 3}, "f:2").to_dict()["level"] == 3
    known = {"name": "a", "level": 3, "size": 1, "inner": {"note": "n"}, "verdict": "correct"}
    assert msgspec.json.decode(json.dumps(known), type=_Demo) == _Demo.from_dict(known, "f:3")
    with pytest.raises(msgspec.ValidationError):  # an unknown key: read the general way
        msgspec.json.decode(json.dumps(line), type=_Demo)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "a", "size": "9"}, "field 'size' must be a whole number or null, not text"),
        ({"name": "a", "level": "9"}, "field 'level' must be a whole number or null, not text"),
        ({"name": "a", "inner": {"note": 1}}, "field 'inner.note' must be text, not a whole"),
        ({"name": "a", "verdict": "x"}, "field 'verdict' must be one of correct, wrong, no_"),
        ({"size": 1}, "missing field 'name'"),
    ]
    for bad, message in cases:
        with pytest.raises(InputError, match=f"^f:9: {re.escape(message)}"):
            _Demo.from_dict(bad, "f:9")


def test_a_sample_with_every_field_writes_each_declared_key_once() -> None:
    """Every key a sample and a correction declare is written (when set) and read back, by
    both readers: no key is known to one of them only."""
    rows = load_jsonl(DATA / "records-v2.jsonl")
    full = read_any(next(r for r in rows if "thinking" in r and "pot_verdict" in r), "v2:1")
    assert isinstance(full, Sample)
    written = full.to_dict()
    declared = layout(Sample).keys | {"reviewer"}  # and the user's own key
    assert set(written) == declared
    line = json.dumps({k: v for k, v in written.items() if k != "reviewer"}).encode()
    assert fast.sample_or_correction(line) == msgspec.structs.replace(
        full, extra={}, schema_version=SCHEMA_VERSION
    )
    assert "duplicates" in written["meta"]
    assert set(written["meta"]) <= layout(Provenance).keys
    # a correction's original: the sample's own fields, every one of them
    original = full.as_original().to_dict()
    assert set(original) == set(layout(Original).keys) | {"reviewer"}
    assert {k: written[k] for k in original} == original


def test_the_record_modules_import_one_another_without_a_cycle() -> None:
    """No record module imports one that imports it back (not even for type checking): the
    record types are built on `schema` and read by kind in `kinds`, never the other way."""
    modules = {p.stem: p for p in (ROOT / "lemagen" / "records").glob("*.py")}
    imports: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["lemagen", "records"] and len(parts) == 3:
                    found.add(parts[2])
        imports[name] = found
    assert imports["analysis"] >= {"schema"}  # the walk finds imports

    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(imports[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += imports.get(name, set())
        return seen

    assert [name for name in imports if name in reaches(name)] == []
