"""The reasons a row is set aside are one `Literal` type (`lemagen.terms.Reason`): everything
that sets a row aside takes it, so mypy refuses a reason that is not declared, and the table of
reasons in docs/records.md is generated from the declaration (`terms.reasons_table`)."""

from __future__ import annotations

import typing
from typing import get_args

from lemagen.art.replies import ParsedQuestions
from lemagen.engine.calls import RequestFailed
from lemagen.errors import InputError
from lemagen.lemma.replies import ParsedAnalysis, ParsedInjection
from lemagen.mistakes.gsm8k import Unusable
from lemagen.records import Reject
from lemagen.records.rows import SetAside
from lemagen.terms import INTERNAL, REASONS, Reason, reasons_table
from tests.conftest import ROOT

RECORDS = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")


def readme_table() -> str:
    return RECORDS.split("<!-- reasons:start -->\n", 1)[1].split("\n<!-- reasons:end -->", 1)[0]


def test_the_documented_table_of_reasons_is_the_declared_one() -> None:
    """Regenerate it with `python -c "from lemagen.terms import reasons_table;
    print(reasons_table())"` between the markers when a reason changes."""
    assert readme_table() == reasons_table()


def test_every_declared_reason_is_described_and_in_the_table() -> None:
    declared = set(get_args(Reason))
    assert len(declared) >= 40
    assert set(REASONS) == declared
    listed = {line.split("`")[1] for line in readme_table().splitlines()[2:]}
    assert listed == declared - INTERNAL
    assert all(where and why for where, why in REASONS.values())


def test_whatever_sets_a_row_aside_takes_the_reason_type() -> None:
    """The ways a reason enters a record (a set-aside row, a reject, a bad input row, a
    failed call, an unusable problem, a reply that cannot be used) are typed with `Reason`."""
    takers = {
        SetAside: "reason",
        Reject: "reason",
        ParsedAnalysis: "error",
        ParsedInjection: "error",
        ParsedQuestions: "error",
    }
    for cls, name in takers.items():
        hint = typing.get_type_hints(cls)[name]
        assert Reason in (hint, *get_args(hint)), cls
    for cls in (InputError, RequestFailed, Unusable):
        assert typing.get_type_hints(cls.__init__)["reason"] == Reason, cls
