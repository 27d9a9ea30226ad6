"""Commands that call models: `sample` and `correct`."""

from __future__ import annotations

from typing import Any

import click

from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import (
    endpoint_options,
    engine_config,
    io_options,
    max_pending,
    problem_reader,
    sampling,
    task_options,
    template,
)
from lemagen.cli.running import run_stage
from lemagen.stages.correct import CorrectStage
from lemagen.stages.sample import SAMPLE_VARIABLES, SampleStage


@cli.command(epilog=EPILOG)
@io_options
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Reasoner model; repeat for several reasoners in one run.",
)
@click.option(
    "--keep",
    type=click.Choice(["wrong", "all"]),
    default="wrong",
    show_default=True,
    help="Write only wrong samples (for correction) or all graded samples.",
)
@click.option(
    "--prompt",
    "prompt_name",
    default="sample",
    show_default=True,
    metavar="NAME|PATH",
    help="Sampling prompt: sample (zero-shot), gsm8k-fewshot or math-fewshot (base models), "
    "or a file with a {{question}} placeholder.",
)
@click.option(
    "--explicit-answers-only",
    is_flag=True,
    help="Set aside (reason implicit_answer) samples whose answer was not marked as the answer "
    "(\\boxed{}, 'The answer is', '####', an 'Answer:' line) but read off the last sentence.",
)
@task_options
@endpoint_options(n_default=4, temperature_default=0.7)
def sample(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    models: tuple[str, ...],
    keep: str,
    prompt_name: str,
    explicit_answers_only: bool,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
    **opts: Any,
) -> None:
    """Sample chain-of-thought solutions and keep the wrong ones.

    INPUT is problems JSONL (GSM8K, MATH, MATH-500 or any JSONL with --question-field and
    --answer-field); '-' or nothing reads stdin. Each output line is one graded sample with
    its steps, extracted answer, verdict and provenance. Truncated samples, samples with no
    answer and failed requests are set aside (--rejects), never treated as mistakes. Each
    sample says how its answer was found (extracted_by); --explicit-answers-only sets aside
    those whose answer was not explicitly marked.

    Every sample received is kept in the request store (--cache-dir), so re-running the same
    command after an interruption or failure sends only what never arrived.

    \b
    Example:
      OPENAI_BASE_URL=http://localhost:8000/v1 \\
        lemagen sample examples/gsm8k.jsonl -m Qwen/Qwen2.5-0.5B-Instruct -n 4 > wrong.jsonl
    """
    stage = SampleStage(
        problem_reader(task, question_field, answer_field),
        engine_config(opts, models),
        template=template(prompt_name, SAMPLE_VARIABLES),
        models=list(models),
        n=opts["n"],
        sampling=sampling(opts),
        keep_all=keep == "all",
        check_timeout=opts["check_timeout"],
        max_pending=max_pending(opts),
        explicit_only=explicit_answers_only,
    )
    run_stage(
        stage,
        [input_path],
        output=output,
        rejects=rejects,
        skip_bad_rows=skip_bad_rows,
        quiet=quiet,
        dry_run=opts["dry_run"],
    )


# ---------------------------------------------------------------- correct


@cli.command(epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="Corrector model (GPT-4 class).")
@click.option(
    "--prompt",
    "prompt_name",
    metavar="NAME|PATH",
    help="Corrector prompt [default: correct.gsm8k or correct.math, by task]; a file "
    "needs {{question}} and {{steps}}.",
)
@endpoint_options(n_default=1, temperature_default=0.0)
def correct(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    model: str,
    prompt_name: str | None,
    **opts: Any,
) -> None:
    """Ask a corrector for the incorrect step, an explanation and a corrected solution.

    INPUT is the output of `lemagen sample`. Each wrong sample gets -n corrections, parsed
    into incorrect_step, explanation, corrected_steps, pred and verdict; an unparseable reply
    is kept with its reject_reason (so nothing paid for is lost) and dropped later by
    `lemagen filter`. Samples that are not wrong pass through unchanged. Replies are kept in
    the request store (--cache-dir): re-running sends only what never arrived.

    \b
    Example:
      lemagen correct wrong.jsonl -m gpt-4o > corrections.jsonl
    """
    stage = CorrectStage(
        engine_config(opts, [model]),
        model=model,
        prompt_name=prompt_name,
        n=opts["n"],
        sampling=sampling(opts),
        check_timeout=opts["check_timeout"],
        max_pending=max_pending(opts),
    )
    run_stage(
        stage,
        [input_path],
        output=output,
        rejects=rejects,
        skip_bad_rows=skip_bad_rows,
        quiet=quiet,
        dry_run=opts["dry_run"],
    )
