"""Every stage built from plain keyword options: what the CLI commands and the Python API share.

A command declares its options and passes them here (the keyword names are the options' own);
the API functions in `lemagen.api` take the same keywords and run the stage over iterables. So
a stage is set up in one place, and a script and a command given the same options send the
same requests and write the same records.

Model-calling builders take the endpoint options (`Endpoint`'s fields) as further keywords.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from lemagen.api.endpoint import Endpoint
from lemagen.engine import price_for
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT
from lemagen.records import TAXONOMY_IDS, Problem
from lemagen.records.analysis import error_type_counts
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, ToDict, iter_rows
from lemagen.stages import templates
from lemagen.stages.decontam import DEFAULT_NGRAM, DEFAULT_OVERLAP, HeldOut
from lemagen.stages.retry_text import DEFAULT_MARKER, DEFAULT_RETRY_RATE, RetryOptions
from lemagen.stages.trajectories import DEFAULT_RESTART_RATE

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.stages.analyze import AnalyzeStage
    from lemagen.stages.art import AskStage, TrustStage
    from lemagen.stages.correct import CorrectStage
    from lemagen.stages.crosscheck import CrosscheckStage
    from lemagen.stages.evolve import EvolveStage
    from lemagen.stages.export import ExportStage
    from lemagen.stages.filter import FilterStage
    from lemagen.stages.grade import GradeStage
    from lemagen.stages.inject import InjectStage
    from lemagen.stages.sample import SampleStage
    from lemagen.stages.smooth import SmoothStage
    from lemagen.stages.stats import StatsStage
    from lemagen.stages.teach import TeachStage


def template(name: str, variables: set[str]) -> templates.Template:
    """A shipped prompt or a prompt file, checked against the variables its stage fills."""
    found = templates.load(name)
    found.check(variables)
    return found


def _choice(option: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise click.UsageError(f"{option} {value!r}: choose from {', '.join(choices)}")
    return value


def _models(model: str | Sequence[str]) -> list[str]:
    models = [model] if isinstance(model, str) else list(model)
    if not models or not all(models):
        raise click.UsageError("give a model (-m)")
    return models


def sample_stage(
    *,
    model: str | Sequence[str],
    n: int = 4,
    temperature: float = 0.7,
    keep: str = "wrong",
    thinking: str = "keep",
    gold: str = "given",
    min_agreement: float = 0.5,
    prompt: str = "sample",
    explicit_answers_only: bool = False,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    **endpoint: Any,
) -> SampleStage:
    """`lemagen sample`: `model` is one reasoner or several."""
    from lemagen.stages.sample import SAMPLE_VARIABLES, SampleStage

    models = _models(model)
    calls = Endpoint(**endpoint)
    return SampleStage(
        ProblemReader(
            task,
            question_field,
            answer_field,
            id_field=id_field,
            gold_optional=_choice("--gold", gold, ("given", "vote")) == "vote",
        ),
        calls.engine_config(models),
        template=template(prompt, SAMPLE_VARIABLES),
        models=models,
        n=n,
        sampling=calls.sampling(temperature),
        keep_all=_choice("--keep", keep, ("wrong", "all")) == "all",
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
        thinking=_choice("--thinking", thinking, ("keep", "drop", "steps")),
        min_agreement=min_agreement,
        explicit_only=explicit_answers_only,
    )


def correct_stage(
    *,
    model: str,
    n: int = 1,
    temperature: float = 0.0,
    prompt: str | None = None,
    reask: int = 0,
    json_mode: bool = False,
    **endpoint: Any,
) -> CorrectStage:
    """`lemagen correct`: `prompt` None picks correct.gsm8k or correct.math by task."""
    from lemagen.stages.correct import CorrectStage

    calls = Endpoint(**endpoint)
    return CorrectStage(
        calls.engine_config(_models(model)),
        model=model,
        prompt_name=prompt,
        n=n,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        reask=reask,
        json_mode=json_mode,
        request=calls.request_shape(),
    )


def evolve_stage(
    *,
    model: str,
    samples: int = 100,
    votes: int = 3,
    temperature: float = 0.7,
    prompt: str = "evolve",
    answer_prompt: str = "sample",
    **endpoint: Any,
) -> EvolveStage:
    """`lemagen evolve`: draws are seeded by the endpoint option `seed` (None: 0)."""
    from lemagen.stages.evolve import EVOLVE_VARIABLES, EvolveStage
    from lemagen.stages.sample import SAMPLE_VARIABLES

    calls = Endpoint(**endpoint)
    return EvolveStage(
        calls.engine_config(_models(model)),
        model=model,
        template=template(prompt, EVOLVE_VARIABLES),
        answer_template=template(answer_prompt, SAMPLE_VARIABLES),
        samples=samples,
        votes=votes,
        seed=calls.seed or 0,
        sampling=calls.sampling(temperature),
        vote_sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def crosscheck_stage(
    *,
    model: str,
    temperature: float = 0.0,
    prompt: str = "crosscheck",
    check_all: bool = False,
    program_timeout: float = 5.0,
    program_memory: int = 1024,
    workers: int | None = None,
    **endpoint: Any,
) -> CrosscheckStage:
    """`lemagen crosscheck`: `program_memory` in MB; programs run in `workers` sandboxes at
    once (None: one per core)."""
    from lemagen.pot.sandbox import Limits
    from lemagen.stages.crosscheck import CROSSCHECK_VARIABLES, CrosscheckStage

    calls = Endpoint(**endpoint)
    seconds = max(1, int(program_timeout + 0.999))
    return CrosscheckStage(
        calls.engine_config(_models(model)),
        model=model,
        template=template(prompt, CROSSCHECK_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        limits=Limits(timeout=program_timeout, cpu=seconds, memory=program_memory << 20),
        check_all=check_all,
        request=calls.request_shape(),
        workers=workers or default_workers(),
    )


def filter_stage(
    *,
    with_cot: bool = False,
    with_meta: bool = False,
    decontaminate: Sequence[str] = (),
    ngram: int = DEFAULT_NGRAM,
    overlap: float = DEFAULT_OVERLAP,
    require_pot_agreement: bool = False,
) -> FilterStage:
    """`lemagen filter`: `decontaminate` lists test-set JSONL paths."""
    from lemagen.stages.filter import FilterStage

    held_out = None
    if decontaminate:
        held_out = HeldOut(ngram, overlap)
        for path in decontaminate:
            held_out.load(path)
    return FilterStage(
        with_cot=with_cot,
        with_meta=with_meta,
        held_out=held_out,
        require_pot=require_pot_agreement,
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
    from lemagen.stages.export import FORMATS, PAIR_FORMATS, ExportStage

    fmt = _choice("--format", format, FORMATS)
    if chat and fmt != "trl":
        raise click.UsageError("--chat applies to --format trl only")
    if restart_rate is not None and fmt != "lemma":
        raise click.UsageError("--restart-rate applies to --format lemma only")
    if mix and fmt in PAIR_FORMATS:
        raise click.UsageError(f"--mix does not apply to --format {fmt} (pairs)")
    if cross_model and fmt not in PAIR_FORMATS:
        raise click.UsageError("--cross-model applies to --format dpo and openai-dpo")
    if gold_cot is not None and not (fmt == "cot" or mix):
        raise click.UsageError("--gold-cot applies to --format cot, or to any format with --mix")
    return ExportStage(
        fmt,
        chat=chat,
        mix=mix,
        seed=seed,
        max_pairs=max_pairs_per_question,
        keep_fields=tuple(keep_fields),
        gold_cot=None if gold_cot is None else _problems(gold_cot),
        cross_model=cross_model,
        require_pot=require_pot_agreement,
        restart_rate=DEFAULT_RESTART_RATE if restart_rate is None else restart_rate,
    )


def _problems(source: str | Iterable[Mapping[str, Any] | ToDict]) -> Iterable[Problem]:
    reader = ProblemReader()
    if isinstance(source, str):
        return iter_rows(source, reader.read, skip_bad_rows=False, rejects=Rejects(None))
    return (
        reader.read(dict(row) if isinstance(row, Mapping) else row.to_dict(), f"<rows>:{i}")
        for i, row in enumerate(source, 1)
    )


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
    from lemagen.stages.grade import GradeStage

    return GradeStage(
        ProblemReader(
            task, question_field, answer_field, id_field=id_field, require_question=False
        ),
        response_field=response_field,
        check_timeout=check_timeout,
        workers=workers or default_workers(),
    )


def default_workers() -> int:
    """`--workers` when not given: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inject_stage(
    *,
    types: Sequence[str] | None = None,
    per_question: int = 1,
    seed: int = 0,
    format: str = "lema",  # the option's own name
    retry_rate: float = DEFAULT_RETRY_RATE,
    fake: bool = False,
    marker: str = DEFAULT_MARKER,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    model: str | None = None,
    types_from: str | None = None,
    question_types: bool = False,
    prompt: str = "inject",
    temperature: float = 0.7,
    **endpoint: Any,
) -> InjectStage | TeachStage:
    """`lemagen inject`. Offline (no `model`): `types` from calculation, copy, operator, skip
    [default: calculation, copy, operator]. With a teacher `model`: `types` of LEMMA's
    taxonomy, or `types_from` a `lemagen analyze` output to draw them by frequency
    (`question_types`: per problem); the endpoint options apply (`seed` is the draws')."""
    from lemagen.stages.inject import InjectStage
    from lemagen.stages.mistakes import DEFAULT_TYPES, ERROR_TYPES

    reader = ProblemReader(task, question_field, answer_field, id_field=id_field)
    if model is not None:
        return _teacher(
            model,
            tuple(types or ()),
            types_from,
            question_types,
            prompt,
            per_question,
            seed,
            format,
            reader,
            temperature,
            endpoint,
        )
    if endpoint or types_from is not None or question_types:
        given = [*endpoint, *(["types_from"] if types_from else [])]
        given += ["question_types"] if question_types else []
        raise click.UsageError(f"{', '.join(given)}: only with --model (a teacher)")
    chosen = DEFAULT_TYPES if types is None else tuple(types)
    for name in chosen:
        _choice("--types", name, ERROR_TYPES)
    return InjectStage(
        reader,
        fmt=_choice("--format", format, ("lema", "retry")),
        types=chosen,
        per_question=per_question,
        seed=seed,
        retry=RetryOptions(rate=retry_rate, fake=fake, marker=marker),
    )


def _teacher(
    model: str,
    types: tuple[str, ...],
    types_from: str | None,
    question_types: bool,
    prompt: str,
    per_question: int,
    seed: int,
    fmt: str,
    reader: ProblemReader,
    temperature: float,
    endpoint: dict[str, Any],
) -> TeachStage:
    from lemagen.stages.teach import TEACH_VARIABLES, TeachStage, TypeDraw

    if fmt != "lema":
        raise click.UsageError("--model writes corrections: --format retry is offline only")
    if bool(types) == bool(types_from):
        raise click.UsageError("--model needs --types or --types-from (one of them)")
    if question_types and not types_from:
        raise click.UsageError("--question-types needs --types-from")
    for name in types:
        _choice("--types", name, TAXONOMY_IDS)
    by_problem = error_type_counts(types_from) if types_from else {}
    weights = sum(by_problem.values(), Counter()) if types_from else Counter(types)
    calls = Endpoint(**endpoint)
    return TeachStage(
        calls.engine_config([model]),
        reader=reader,
        model=model,
        template=template(prompt, TEACH_VARIABLES),
        types=TypeDraw(weights, by_problem if question_types else None),
        per_question=per_question,
        seed=seed,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def analyze_stage(
    *, model: str, temperature: float = 0.0, prompt: str = "analyze", **endpoint: Any
) -> AnalyzeStage:
    """`lemagen analyze`: the first erroneous step and its LEMMA error type per wrong sample."""
    from lemagen.stages.analyze import ANALYZE_VARIABLES, AnalyzeStage

    calls = Endpoint(**endpoint)
    return AnalyzeStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, ANALYZE_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def art_ask_stage(
    *, model: str, temperature: float = 0.0, prompt: str = "art-ask", **endpoint: Any
) -> AskStage:
    """`lemagen art ask`: Asker records (sub-questions written by `model`)."""
    from lemagen.stages.art import ASK_VARIABLES, AskStage

    calls = Endpoint(**endpoint)
    return AskStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, ASK_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def art_trust_stage() -> TrustStage:
    """`lemagen art trust`: Truster records; no model."""
    from lemagen.stages.art import TrustStage

    return TrustStage()


def smooth_stage(
    *,
    model: str,
    restart_rate: float = DEFAULT_RESTART_RATE,
    temperature: float = 0.7,
    prompt: str = "smooth",
    **endpoint: Any,
) -> SmoothStage:
    """`lemagen smooth`: LEMMA trajectories rewritten by `model`; the endpoint option `seed`
    (None: 0) picks the trajectories as `export --format lemma --seed` does."""
    from lemagen.stages.smooth import SMOOTH_VARIABLES, SmoothStage

    calls = Endpoint(**endpoint)
    return SmoothStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, SMOOTH_VARIABLES),
        seed=calls.seed or 0,
        restart_rate=restart_rate,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
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
    from lemagen.stages.stats import StatsStage

    price = functools.partial(
        price_for, price_in=price_in, price_out=price_out, price_cached=price_cached
    )
    return StatsStage(as_json=as_json, by=by, price=price, details=details)
