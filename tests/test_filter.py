from __future__ import annotations

import copy
from typing import Any

import pytest

from lemagen.errors import InputError
from lemagen.lema.filter import FilterStage
from lemagen.lema.formats import lema_correction
from lemagen.records import Correction
from lemagen.records.rows import Encoded, Rejects, SetAside
from lemagen.stage.base import Hooks


def judge(
    record: dict[str, Any],
    where: str = "f:1",
    *,
    stage: FilterStage | None = None,
    with_cot: bool = False,
    with_meta: bool = False,
) -> tuple[dict[str, Any] | None, str | None]:
    """What `lemagen filter` makes of one record: (training record, None) or (None, reason)."""
    stage = stage or FilterStage(with_cot=with_cot, with_meta=with_meta, held_out=None)
    [out] = stage.run([stage.read(record, where)], Hooks())
    if isinstance(out, SetAside):
        return None, out.reason
    assert not isinstance(out, Encoded)
    return out.to_dict(), None


def correction(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "p1",
        "task": "gsm8k",
        "question": "A bakery sells muffins for $3 each and cookies for $2 each. On Monday it sold "
        "40 muffins and twice as many cookies. How much money did it make on Monday?",
        "gold": "280",
        "sample_id": "p1-s",
        "correction_id": "p1-s-c",
        "original": {
            "steps": [
                "The bakery sold 40 * 2 = 80 cookies.",
                "The muffins brought in 40 * 3 = $120.",
                "The cookies brought in 40 * 2 = $80.",
                "In total it made 120 + 80 = $200.",
                "The answer is 200.",
            ],
            "verdict": "wrong",
        },
        "incorrect_step": 3,
        "explanation": "Step 3 multiplies the cookie price by the number of muffins (40) instead "
        "of the number of cookies (80) found in Step 1.",
        "corrected_from": 3,
        "elided": True,
        "corrected_steps": [
            "The cookies brought in 80 * 2 = $160.",
            "In total it made 120 + 160 = $280.",
            "The answer is 280.",
        ],
        "pred": "280",
        "verdict": "correct",
        "reject_reason": None,
        "meta": {"finish_reason": "stop"},
    }
    record.update(changes)
    return record


def test_lema_correction_record_is_exactly_the_reference_format() -> None:
    """methods.md §1.7, correction record, character for character."""
    assert lema_correction(Correction.from_dict(correction(), "f:1")).to_dict() == {
        "prompt": "For the following math problem, the original solution is incorrect. Please "
        "identify the incorrect step, explain why it is incorrect, and correct the original "
        "solution starting from the incorrect step.\nQuestion: A bakery sells muffins for $3 each "
        "and cookies for $2 each. On Monday it sold 40 muffins and twice as many cookies. How much "
        "money did it make on Monday?\nOriginal Solution:\n{\nStep 1: The bakery sold 40 * 2 = 80 "
        "cookies.\nStep 2: The muffins brought in 40 * 3 = $120.\nStep 3: The cookies brought in "
        "40 * 2 = $80.\nStep 4: In total it made 120 + 80 = $200.\nStep 5: The answer is 200.\n}\n"
        "Incorrect Step:",
        "completion": " Step 3.\nExplanation: Step 3 multiplies the cookie price by the number of "
        "muffins (40) instead of the number of cookies (80) found in Step 1.\nCorrect Solution:\n"
        "{\n...\nStep 3: The cookies brought in 80 * 2 = $160.\nStep 4: In total it made 120 + 160 "
        "= $280.\nStep 5: The answer is 280.\n}",
    }


def test_keeps_a_good_correction() -> None:
    out, reason = judge(correction())
    assert reason is None
    assert out is not None
    assert set(out) == {"prompt", "completion"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"reject_reason": "unparseable: no explanation"}, "unparseable"),
        ({"meta": {"finish_reason": "length"}}, "truncated"),
        ({"incorrect_step": 6}, "step_out_of_range"),
        ({"incorrect_step": 0}, "step_out_of_range"),
        ({"incorrect_step": None}, "step_out_of_range"),
        ({"incorrect_step": 2}, "step_mismatch"),
        ({"verdict": "wrong", "pred": "281"}, "wrong_answer"),
        ({"verdict": "no_answer", "pred": None}, "no_answer"),
        ({"verdict": "timeout"}, "check_timeout"),
        (
            {
                "incorrect_step": 5,
                "corrected_from": 5,
                "corrected_steps": ["The answer is 200."],
                "verdict": "correct",
            },
            "unchanged",
        ),
        (
            {  # the same text, only split into steps differently
                "incorrect_step": 4,
                "corrected_from": 4,
                "corrected_steps": ["In total it made 120 + 80 = $200. The answer is 200."],
                "verdict": "correct",
            },
            "unchanged",
        ),
        (
            {
                "elided": False,
                "corrected_from": 1,
                "corrected_steps": [
                    "The bakery sold 2 * 40 = 80 cookies.",
                    "The muffins brought in 40 * 3 = $120.",
                    "The cookies brought in 80 * 2 = $160.",
                    "In total it made 120 + 160 = $280.",
                    "The answer is 280.",
                ],
            },
            "prefix_changed",
        ),
        (
            {
                "corrected_steps": [
                    "The cookies brought in 40 * 2 = $80.",
                    "In total it made 120 + 160 = $280.",
                    "The answer is 280.",
                ]
            },
            "step_unchanged",
        ),
        (
            {  # names Step 4 and stops there, Step 4 as it was: the named step is the last
                "incorrect_step": 4,
                "corrected_from": 4,
                "corrected_steps": ["In total it made 120 + 80 = $200."],
                "verdict": "correct",
            },
            "step_unchanged",
        ),
    ],
)
def test_drops_with_reason(changes: dict[str, Any], reason: str) -> None:
    assert judge(correction(**changes)) == (None, reason)


def test_an_un_elided_copy_of_the_earlier_steps_is_kept() -> None:
    """Whitespace and a final full stop do not make a copied step a changed one."""
    out, reason = judge(
        correction(
            elided=False,
            corrected_from=1,
            corrected_steps=[
                "The bakery sold  40 * 2 = 80 cookies",
                "The muffins brought in 40 * 3 = $120.",
                "The cookies brought in 80 * 2 = $160.",
                "In total it made 120 + 160 = $280.",
                "The answer is 280.",
            ],
        )
    )
    assert reason is None
    assert out is not None
    assert "Step 1: The bakery sold  40 * 2 = 80 cookies\nStep 2:" in out["completion"]


def test_steps_before_corrected_from_are_filled_even_without_elided() -> None:
    """A record from before replies numbered from Step k were read as elided: its full
    solution still starts with the original steps, and its LEMA target has the `...`."""
    record = Correction.from_dict(correction(elided=False), "f:1")
    assert record.full_solution()[:2] == list(record.original.steps[:2])
    assert "{\n...\nStep 3: The cookies" in lema_correction(record).completion


def test_duplicates_are_dropped() -> None:
    stage = FilterStage(with_cot=False, with_meta=False, held_out=None)
    assert judge(correction(), stage=stage)[1] is None
    other = copy.deepcopy(correction(correction_id="other"))
    assert judge(other, "f:2", stage=stage) == (None, "duplicate")


def test_samples_and_cot() -> None:
    sample = {
        "id": "p1",
        "task": "gsm8k",
        "question": "Q?",
        "gold": "5",
        "sample_id": "s",
        "steps": ["2 + 3 = 5.", "The answer is 5."],
        "verdict": "correct",
    }
    assert judge(sample) == (None, "correct_sample")
    out, _ = judge(sample, with_cot=True, with_meta=True)
    assert out == {
        "prompt": "Please solve the following math problem.\nQuestion: Q?\n"
        "Answer: Let's think step by step.\n",
        "completion": "2 + 3 = 5. The answer is 5.",
        "id": "p1",
        "kind": "cot",
    }
    assert judge({**sample, "verdict": "wrong"}, with_cot=True) == (
        None,
        "uncorrected_sample",
    )


def test_not_a_pipeline_record() -> None:
    with pytest.raises(InputError, match=r"^f.jsonl:3: not a sample or correction record"):
        judge({"question": "q", "answer": "#### 1"}, "f.jsonl:3")


def test_summary_progress_and_the_unparseable_message() -> None:
    """The summary line counts what came in by kind and what was kept or dropped, the progress
    bar every row; a correction set aside as unparseable carries the parser's message to
    --rejects."""
    stage = FilterStage(with_cot=True, with_meta=False, held_out=None)
    sample = {
        "id": "p2",
        "task": "gsm8k",
        "question": "Q?",
        "gold": "5",
        "sample_id": "s",
        "steps": ["2 + 3 = 5.", "The answer is 5."],
        "verdict": "correct",
    }
    rows = [
        correction(),
        correction(correction_id="c2", reject_reason="unparseable: no explanation"),
        correction(correction_id="c3", verdict="wrong", pred="281"),
        sample,
        {**sample, "sample_id": "s2", "verdict": "wrong"},
    ]
    records = [stage.read(row, f"f:{i}") for i, row in enumerate(rows, 1)]
    progress: list[int] = []
    outs = list(stage.run(records, Hooks(on_row=progress.append)))
    assert progress == [1] * len(rows)  # the progress bar counts every input row once
    set_aside = [out for out in outs if isinstance(out, SetAside)]
    assert [(s.reason, s.detail) for s in set_aside] == [
        ("unparseable", "unparseable: no explanation"),
        ("wrong_answer", None),
        ("uncorrected_sample", None),
    ]
    rejects = Rejects(None)
    for item in set_aside:
        rejects.add(item)
    assert stage.summary(rejects) == (
        "filter: in 5 (3 corrections, 2 samples); kept 2 (1 correction, 1 cot); "
        "dropped 3: unparseable 1, wrong_answer 1, uncorrected_sample 1"
    )
