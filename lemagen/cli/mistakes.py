"""`lemagen inject`: mistakes from gold solutions, no model needed (`lemagen.mistakes`), or put in
by a teacher model with --model (LEMMA, `lemagen.lemma.teacher`)."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api import mistakes
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import RunIO, endpoint, endpoint_options, io_options, task_options
from lemagen.mistakes.gsm8k import DEFAULT_TYPES, ERROR_TYPES
from lemagen.mistakes.retry import DEFAULT_MARKER, DEFAULT_RETRY_RATE
from lemagen.records import TAXONOMY_IDS


def _types(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """Offline types, or with --model (read first: it is eager) types of LEMMA's taxonomy."""
    teacher = ctx.params.get("model") is not None
    if value is None:
        return () if teacher else DEFAULT_TYPES
    known = TAXONOMY_IDS if teacher else ERROR_TYPES
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none)"
        raise click.BadParameter(f"unknown error type {given}; choose from {', '.join(known)}")
    return names


@cli.command(name="inject", epilog=EPILOG)
@io_options
@click.option(
    "-m",
    "--model",
    is_eager=True,
    help="Teacher model: ask it to put a mistake of a LEMMA error type into a step of the gold "
    "solution, instead of making mistakes offline.",
)
@click.option(
    "--types",
    callback=_types,
    help="Comma-separated error types. Offline [default: "
    f"{','.join(DEFAULT_TYPES)}]: calculation, copy (a question number copied "
    "wrongly), operator, skip (a later step moved up: a fake mistake whose final "
    "answer is right). With --model: types of LEMMA's taxonomy (see `lemagen analyze`), "
    "drawn alike.",
)
@click.option(
    "--types-from",
    metavar="ANALYSIS",
    help="With --model: draw each type by its frequency in this `lemagen analyze` output "
    "(seeded by --seed).",
)
@click.option(
    "--question-types",
    is_flag=True,
    help="With --types-from: draw a problem's types from its own analysed mistakes when it "
    "has any (LEMMA's per-question distribution), else from the whole file's.",
)
@click.option(
    "--prompt",
    "prompt_name",
    default="inject",
    show_default=True,
    metavar="NAME|PATH",
    help="With --model: the teacher prompt, a shipped name or a file with {{question}}, "
    "{{steps}}, {{step}}, {{error_type}} and {{definition}}.",
)
@click.option(
    "--per-question",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    metavar="K",
    help="Mistakes per problem (distinct, spread over the types).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Same seed, same input: the same bytes out.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lema", "retry"]),
    default="lema",
    show_default=True,
    help="lema: correction records for `lemagen filter`; retry: training text with "
    "mistakes retracted by a marker.",
)
@click.option(
    "--retry-rate",
    type=click.FloatRange(0, 1),
    default=DEFAULT_RETRY_RATE,
    show_default=True,
    help="retry: chance of a mistake before each step. Keep it in 0.1-0.2: at 0.5 "
    "fake-mistake data made accuracy collapse in Physics of LMs 2.2 (avg 95 -> 75) "
    "and the model retried many times per problem.",
)
@click.option(
    "--fake",
    is_flag=True,
    help="retry: fake mistakes (the opening of a later step) instead of real ones.",
)
@click.option(
    "--marker",
    default=DEFAULT_MARKER,
    show_default=True,
    help="retry: the text that retracts a mistaken step.",
)
@task_options
@endpoint_options(n_default=None, temperature_default=0.7, seed=False)
def inject_cmd(
    io: RunIO,
    model: str | None,
    types: tuple[str, ...],
    types_from: str | None,
    question_types: bool,
    prompt_name: str,
    per_question: int,
    seed: int,
    fmt: str,
    retry_rate: float,
    fake: bool,
    marker: str,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
    id_field: str | None,
    **opts: Any,
) -> None:
    """Make mistakes and their corrections from gold solutions, offline (no model, no key).

    INPUT holds problems with step-by-step gold solutions: GSM8K rationales (with <<a*b=c>>
    calculator annotations), MATH solutions (the arithmetic in their LaTeX: $3 \\times 4 =
    12$, \\frac, \\cdot, chained equalities, \\boxed{} answers) or any solution whose steps
    carry `a op b = c` arithmetic. One
    result is altered and every later step that uses it is recomputed, so the wrong solution
    is consistent; the record names the incorrect step, explains the change ("Step 2
    computes 48 / 2 as 26, but 48 / 2 = 24.") and gives the gold steps from there. The
    records have the shape `lemagen correct` writes. Problems that cannot be used are
    counted by reason and set aside (--rejects).

    With --model, a teacher model puts one mistake of a LEMMA error type (--types, or drawn by
    the frequencies of --types-from) into a step drawn from the gold solution, --per-question
    times per problem. A reply is kept only if the steps before that step are unchanged, the
    step changed and the final answer is not gold; the others are set aside with the reason.
    The endpoint options (--base-url, --max-tokens, --dry-run, ...) apply only with --model.

    \b
    Example:
      lemagen inject examples/gsm8k.jsonl --per-question 2 | lemagen filter > lema.jsonl
      lemagen inject train.jsonl -m gpt-4o --types-from analysis.jsonl | lemagen filter
    """
    if model is not None:
        teacher = mistakes.inject_stage(
            model=model,
            types=types,
            types_from=types_from,
            question_types=question_types,
            prompt=prompt_name,
            per_question=per_question,
            seed=seed,
            format=fmt,
            task=task,
            question_field=question_field,
            answer_field=answer_field,
            id_field=id_field,
            **endpoint(opts),
        )
        io.run(teacher, dry_run=opts["dry_run"])
        return
    teacher_only = {"types_from", "question_types", "prompt_name", *opts}
    given = [
        max(p.opts, key=len)
        for p in click.get_current_context().command.params
        if p.name in teacher_only and _set(p.name)
    ]
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --model (a teacher)")
    stage = mistakes.inject_stage(
        types=types,
        per_question=per_question,
        seed=seed,
        format=fmt,
        retry_rate=retry_rate,
        fake=fake,
        marker=marker,
        task=task,
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
    )
    io.run(stage)


def _set(name: str | None) -> bool:
    """The option was given on the command line (not from a default or the environment)."""
    if name is None:
        return False
    source = click.get_current_context().get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE
