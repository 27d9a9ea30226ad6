"""The curating commands (`lemagen.curate`): `grade`, `export` and `stats`."""

from __future__ import annotations

import click

from lemagen.api import curate
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import (
    RunIO,
    input_format_option,
    io_options,
    price_options,
    task_options,
)
from lemagen.cli.running import run_stage
from lemagen.curate.export import DATASET_INFO_FORMATS, FORMATS, write_dataset_info
from lemagen.curate.report_html import render_html
from lemagen.errors import CannotWrite, LemagenError
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT


@cli.command(epilog=EPILOG)
@io_options
@click.option(
    "--response-field",
    default="response",
    show_default=True,
    metavar="NAME",
    help="Field holding the model output to grade.",
)
@click.option(
    "--check-timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds allowed for one symbolic answer check (then: timeout).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Symbolic answer checks run in N processes at once; output stays in input order "
    "[default: the number of cores].",
)
@task_options
def grade(
    io: RunIO,
    response_field: str,
    check_timeout: float,
    workers: int | None,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
    id_field: str | None,
) -> None:
    """Label existing model outputs: add 'pred', 'extracted_by' and 'verdict' to each record.

    For outputs sampled elsewhere (offline vLLM, another tool). Each record needs the output
    (--response-field) and a gold answer (GSM8K '#### N' rationale, MATH solution with
    \\boxed{}, or a bare value). verdict is one of correct, wrong, no_answer, timeout.

    \b
    Example:
      lemagen grade outputs.jsonl --response-field completion > graded.jsonl
    """
    stage = curate.grade_stage(
        response_field=response_field,
        check_timeout=check_timeout,
        workers=workers,
        task=task,
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
    )
    io.run(stage)


@cli.command(name="export", epilog=EPILOG)
@io_options
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="lema",
    show_default=True,
    help="Target format (see below).",
)
@click.option("--chat", is_flag=True, help="trl: conversational {'messages'} records.")
@click.option(
    "--mix",
    is_flag=True,
    help="Also write CoT records for the correct samples in the input, shuffled together "
    "with the corrections (seeded), as LEMA trains.",
)
@click.option(
    "--gold-cot",
    "gold_cot_path",
    metavar="PROBLEMS",
    help="cot, or any format with --mix: also write the problems' own solutions (GSM8K "
    "rationales rendered as LEMA does, MATH solutions with their answer stated) as CoT "
    "records, so one command writes LEMA's whole mix.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle and pairing seed.")
@click.option(
    "--max-pairs-per-question",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    metavar="K",
    help="dpo, openai-dpo: at most K pairs per question.",
)
@click.option(
    "--cross-model",
    is_flag=True,
    help="dpo, openai-dpo: pair a wrong sample only with a correct sample of another model "
    "(verifier data, as Math-Rev builds it from several generators).",
)
@click.option(
    "--keep-fields",
    metavar="A,B",
    default="",
    help="Also write these fields of each row's problem (id, task, gold, or any input field "
    "carried in 'source', such as level) beside the format's own.",
)
@click.option(
    "--dataset-info",
    metavar="PATH",
    help="alpaca, sharegpt, lemma: add this file's entry to LLaMA-Factory's "
    "dataset_info.json at PATH (created or updated); needs -o.",
)
@click.option(
    "--dataset-name",
    metavar="NAME",
    help="Name of the dataset_info.json entry [default: the output file's stem].",
)
@click.option(
    "--restart-rate",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="R",
    help="lemma: the share of trajectories that start afresh after the mistake (Fresh & "
    "Restart, from the problem's own solution) instead of fixing it and going on (Fix & "
    "Continue); which ones depends only on --seed and the row.  [default: 0.5]",
)
@click.option(
    "--require-pot-agreement",
    "require_pot",
    is_flag=True,
    help="Keep only corrections, and pair only chosen solutions, whose program agreed with "
    "their answer in `lemagen crosscheck` (dropped: pot_disagree, pot_error, pot_timeout, "
    "pot_unchecked).",
)
def export_cmd(
    io: RunIO,
    require_pot: bool,
    fmt: str,
    chat: bool,
    mix: bool,
    gold_cot_path: str | None,
    seed: int,
    max_pairs_per_question: int,
    cross_model: bool,
    keep_fields: str,
    dataset_info: str | None,
    dataset_name: str | None,
    restart_rate: float | None,
) -> None:
    """Write the kept corrections in a trainer's format.

    INPUT is `lemagen correct` or `lemagen inject` output (with `sample --keep all`, the
    correct samples pass through it too). Corrections are kept exactly as `lemagen filter`
    keeps them. Formats:

    \b
      lema        {"prompt", "completion"} as LEMA trains (what filter writes)
      alpaca      {"instruction", "input", "output"} for LLaMA-Factory
      sharegpt    {"conversations": [{"from", "value"}]} for LLaMA-Factory
      openai      {"messages"} for OpenAI fine-tuning
      openai-dpo  {"input", "preferred_output", "non_preferred_output"} (OpenAI DPO)
      trl         {"prompt", "completion"}, or {"messages"} with --chat
      dpo         {"prompt", "chosen", "rejected"}: a corrected vs its original
                  solution, and a correct vs a wrong sample of the same question
      cot         the full corrected chain of thought as a LEMA CoT record
      lemma       a LEMMA trajectory, alpaca-shaped: the wrong steps through the
                  incorrect one, a transition, the explanation, then the fix and
                  the rest (Fix & Continue) or, at --restart-rate, a fresh
                  solution (Fresh & Restart); `lemagen smooth` has a model
                  rewrite them fluently
      prm         {"prompt", "completions", "labels"} (TRL stepwise supervision):
                  a mistake's steps through the incorrect one (true..., false),
                  correct solutions all true
      math-shepherd  {"input", "label", "task"}: the same, steps tagged ' ки',
                  labels '+' / '-'

    \b
    Example:
      mkdir -p data
      lemagen export corrections.jsonl -f sharegpt -o data/lema.jsonl \\
        --dataset-info data/dataset_info.json
    """
    stage = curate.export_stage(
        format=fmt,
        chat=chat,
        mix=mix,
        gold_cot=gold_cot_path,
        seed=seed,
        max_pairs_per_question=max_pairs_per_question,
        cross_model=cross_model,
        keep_fields=[f.strip() for f in keep_fields.split(",") if f.strip()],
        require_pot_agreement=require_pot,
        restart_rate=restart_rate,
    )
    if dataset_info is not None:
        if fmt not in DATASET_INFO_FORMATS:
            raise click.UsageError("--dataset-info applies to alpaca, sharegpt and lemma")
        if io.output == "-":
            raise click.UsageError("--dataset-info needs -o: the entry names the data file")
    io.run(stage)
    if dataset_info is not None:
        write_dataset_info(dataset_info, dataset_name, io.output, fmt)


@cli.command(name="stats", epilog=EPILOG)
@click.argument("inputs", metavar="INPUT...", nargs=-1)
@click.option(
    "--json", "as_json", is_flag=True, help="Write the report as one JSON line to stdout."
)
@click.option(
    "--html",
    "html_path",
    metavar="PATH",
    help="Also write a self-contained HTML page (no network needed to view it): charts, yield "
    "and cost per reasoner and corrector, every carried field's breakdown, and a browser of "
    "kept and rejected corrections.",
)
@click.option(
    "--by",
    metavar="FIELD",
    help="Also break the funnel down by this field of the problems (task, or any input field "
    "carried in 'source', such as level).",
)
@price_options
@input_format_option
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
def stats_cmd(
    inputs: tuple[str, ...],
    as_json: bool,
    html_path: str | None,
    by: str | None,
    price_in: float | None,
    price_out: float | None,
    price_cached: float | None,
    input_format: str,
    quiet: bool,
) -> None:
    """Report what a run made: funnel, accuracy per reasoner, incorrect-step positions,
    error types per reasoner, ART records, drop reasons, tokens and cost per kept row.

    INPUT... are any stages' outputs in any mix (sample, correct, inject, analyze, art, a
    --rejects file, filter/export output); none or '-' reads stdin. Accuracy is over real
    samples only (what inject makes is no reasoner's sample); tokens and cost count every call
    once, set-aside replies in rejects files included. --price-in/--price-out/--price-cached
    price every model read, as on the model-calling commands (give them for a run that used
    them). The table goes to stderr, like every summary, so stdout stays JSONL: --json writes
    the report there as one line.

    \b
    Example:
      lemagen stats samples.jsonl corrections.jsonl rejects.jsonl --html report.html
    """
    stage = curate.stats_stage(
        as_json=as_json,
        by=by,
        price_in=price_in,
        price_out=price_out,
        price_cached=price_cached,
        details=html_path is not None,
    )
    run_stage(
        stage,
        inputs or ("-",),
        output="-" if as_json else None,
        quiet=quiet,
        input_format=input_format,
    )
    if html_path is not None:
        page = render_html(stage.report(), stage.stats.details)
        try:
            handle = open(html_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:  # no such directory, no permission: exit 1, as for -o
            raise LemagenError(f"{html_path}: cannot write: {exc.strerror}") from None
        try:
            with handle:
                handle.write(page)
        except OSError as exc:  # a full disk, an I/O error: exit 6
            raise CannotWrite(f"{html_path}: cannot write: {exc.strerror or exc}") from None
