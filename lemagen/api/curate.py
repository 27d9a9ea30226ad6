"""The builders of the curating stages (`lemagen.curate`): grade, export, stats: each stage built
from plain keyword options, shared by its command (`lemagen.cli`) and its API function
(`lemagen.api`), so a script and a command given the same options send the same requests and
write the same records. Model-calling builders take the endpoint options (`Endpoint`'s fields)
as further keywords.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lemagen.engine import price_for
from lemagen.errors import UsageError
from lemagen.lemma.trajectories import DEFAULT_RESTART_RATE
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import ToDict

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.curate.export import ExportStage
    from lemagen.curate.grade import GradeStage
    from lemagen.curate.stats import StatsStage
from lemagen.api.options import checked_choice, default_workers, problem_rows


def grade_stage(
    *,
    response_field: str = "response",
    check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    workers: int | None = None,
) -> GradeStage:
    """`lemagen grade`: `workers` checker processes (None: one per core)."""
    from lemagen.curate.grade import GradeStage

    return GradeStage(
        ProblemReader(
            task, question_field, answer_field, id_field=id_field, require_question=False
        ),
        response_field=response_field,
        check_timeout=check_timeout,
        workers=workers or default_workers(),
    )


def export_stage(
    *,
    format: str = "lema",  # the option's own name
    chat: bool = False,
    mix: bool = False,
    gold_cot: str | Iterable[Mapping[str, Any] | ToDict] | None = None,
    seed: int = 0,
    max_pairs_per_question: int = 8,
    cross_model: bool = False,
    keep_fields: Sequence[str] = (),
    require_pot_agreement: bool = False,
    restart_rate: float | None = None,
) -> ExportStage:
    """`lemagen export`: `gold_cot` is a problems JSONL path or problem rows; `restart_rate`
    (lemma only; None: 0.5) is the share of Fresh & Restart trajectories."""
    from lemagen.curate.export import FORMATS, PAIR_FORMATS, ExportStage

    fmt = checked_choice("format", format, FORMATS)
    if chat and fmt != "trl":
        raise UsageError("{chat} applies to {format} trl only")
    if restart_rate is not None and fmt != "lemma":
        raise UsageError("{restart_rate} applies to {format} lemma only")
    if mix and fmt in PAIR_FORMATS:
        raise UsageError("{mix} does not apply to {format=} (pairs)", format=fmt)
    if cross_model and fmt not in PAIR_FORMATS:
        raise UsageError("{cross_model} applies to {format} dpo and openai-dpo")
    if gold_cot is not None and not (fmt == "cot" or mix):
        raise UsageError("{gold_cot} applies to {format} cot, or to any format with {mix}")
    return ExportStage(
        fmt,
        chat=chat,
        mix=mix,
        seed=seed,
        max_pairs=max_pairs_per_question,
        keep_fields=tuple(keep_fields),
        gold_cot=None if gold_cot is None else problem_rows(gold_cot),
        cross_model=cross_model,
        require_pot=require_pot_agreement,
        restart_rate=DEFAULT_RESTART_RATE if restart_rate is None else restart_rate,
    )


def stats_stage(
    *,
    by: str | None = None,
    as_json: bool = False,
    price_in: float | None = None,
    price_out: float | None = None,
    price_cached: float | None = None,
    details: bool = False,
) -> StatsStage:
    """`lemagen stats`: `by` breaks the funnel down by a problem field; `price_in`,
    `price_out`, `price_cached` (dollars per million tokens) price every model read;
    `details`: also collect what the HTML page shows (examples, per-model tables)."""
    from lemagen.curate.stats import StatsStage

    price = functools.partial(
        price_for, price_in=price_in, price_out=price_out, price_cached=price_cached
    )
    return StatsStage(as_json=as_json, by=by, price=price, details=details)
