"""LEMA's commands (`lemagen.lema`): `sample`, `correct`, `evolve` and `filter`."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api import lema
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import (
    RunIO,
    endpoint,
    endpoint_options,
    io_options,
    task_options,
)
from lemagen.curate.decontam import DEFAULT_NGRAM, DEFAULT_OVERLAP


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
    "--thinking",
    type=click.Choice(["keep", "drop", "steps"]),
    default="keep",
    show_default=True,
    help="A reasoning model's thinking (<think> blocks, reasoning_content): keep it "
    "in the record's 'thinking' field, apart from the steps that are graded and "
    "trained on; drop it; or make it part of the steps.",
)
@click.option(
    "--gold",
    "gold_mode",
    type=click.Choice(["given", "vote"]),
    default="given",
    show_default=True,
    help="vote: problems without an answer (give --task) take the answer most samples agree "
    "on as gold, recorded in 'gold_vote'. Weaker than real gold: a model's shared mistake "
    "becomes the 'right' answer.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="--gold vote: the share of a problem's samples that must agree (else set aside as "
    "no_agreement).",
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
    io: RunIO,
    models: tuple[str, ...],
    keep: str,
    thinking: str,
    gold_mode: str,
    min_agreement: float,
    prompt_name: str,
    explicit_answers_only: bool,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
    id_field: str | None,
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
    stage = lema.sample_stage(
        model=models,
        keep=keep,
        thinking=thinking,
        gold=gold_mode,
        min_agreement=min_agreement,
        prompt=prompt_name,
        explicit_answers_only=explicit_answers_only,
        task=task,
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
        **endpoint(opts),
    )
    io.run(stage, dry_run=opts["dry_run"])


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
@click.option(
    "--reask",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="N",
    help="Ask again for a reply that could not be parsed, up to N more times per reply (a new "
    "sample index each time: the request store keeps every reply).",
)
@click.option(
    "--json",
    "json_mode",
    is_flag=True,
    help="Ask for the correction as a JSON object (response_format json_schema: "
    "incorrect_step, explanation, corrected_steps), on endpoints that support it.",
)
@endpoint_options(n_default=1, temperature_default=0.0)
def correct(
    io: RunIO,
    model: str,
    prompt_name: str | None,
    reask: int,
    json_mode: bool,
    **opts: Any,
) -> None:
    """Ask a corrector for the incorrect step, an explanation and a corrected solution.

    INPUT is the output of `lemagen sample`. Each wrong sample gets -n corrections, parsed
    into incorrect_step, explanation, corrected_steps, pred and verdict; an unparseable reply
    is kept with its reject_reason (so nothing paid for is lost) and dropped later by
    `lemagen filter`. Samples that are not wrong pass through unchanged. Replies are kept in
    the request store (--cache-dir): re-running sends only what never arrived. Replies are
    read in the LEMA layout and the variants models write (markdown labels, code fences,
    a preamble, chatter after the solution, no braces, no `...`); see docs/lema.md.

    \b
    Example:
      lemagen correct wrong.jsonl -m gpt-4o > corrections.jsonl
    """
    stage = lema.correct_stage(
        model=model, prompt=prompt_name, reask=reask, json_mode=json_mode, **endpoint(opts)
    )
    io.run(stage, dry_run=opts["dry_run"])


@cli.command(epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="The evolving model (GPT-4 class).")
@click.option(
    "--samples",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Bootstrap draws from the seed questions (with replacement; one new question each).",
)
@click.option(
    "--votes",
    type=click.IntRange(2),
    default=3,
    show_default=True,
    help="Answers asked for each new question; their majority is its pseudo-gold.",
)
@click.option(
    "--prompt",
    "prompt_name",
    default="evolve",
    show_default=True,
    metavar="NAME|PATH",
    help="Evolution prompt (a {{question}} placeholder).",
)
@click.option(
    "--answer-prompt",
    default="sample",
    show_default=True,
    metavar="NAME|PATH",
    help="Prompt for the voting answers.",
)
@endpoint_options(n_default=None, temperature_default=0.7)
def evolve(
    io: RunIO,
    model: str,
    samples: int,
    votes: int,
    prompt_name: str,
    answer_prompt: str,
    **opts: Any,
) -> None:
    """Write new questions from the ones mistakes were corrected on (LEMA's evolution).

    INPUT is `lemagen correct` (or `inject`) output. The seed pool is the questions of the
    corrections `lemagen filter` would keep; --samples draws (seeded by --seed) each ask the
    model for one related question with a purely numeric answer, and --votes answers from the
    same model give its pseudo-gold by majority (questions whose answers all differ are set
    aside as no_agreement). Output: problems JSONL for `lemagen sample`, each with its seed_id.
    Pseudo-gold is weaker than real gold: a shared mistake becomes the answer.

    \b
    Example:
      lemagen evolve corrections.jsonl -m gpt-4o --samples 1000 > evolved.jsonl
      lemagen sample evolved.jsonl -m MODEL | lemagen correct -m gpt-4o | lemagen filter
    """
    stage = lema.evolve_stage(
        model=model,
        samples=samples,
        votes=votes,
        prompt=prompt_name,
        answer_prompt=answer_prompt,
        **endpoint(opts),
    )
    io.run(stage, dry_run=opts["dry_run"])


@cli.command(name="filter", epilog=EPILOG)
@io_options
@click.option(
    "--with-cot",
    is_flag=True,
    help="Also write LEMA CoT records for the correct samples in the input.",
)
@click.option(
    "--with-meta",
    is_flag=True,
    help="Add 'id' and 'kind' to each training record (not part of the LEMA format).",
)
@click.option(
    "--decontaminate",
    "test_sets",
    multiple=True,
    metavar="TEST.jsonl",
    help="Drop rows whose question overlaps a question of this test set (repeatable): equal "
    "after normalisation, or sharing at least --overlap of its word n-grams.",
)
@click.option(
    "--ngram",
    type=click.IntRange(1),
    default=DEFAULT_NGRAM,
    show_default=True,
    help="--decontaminate: n-gram length in words.",
)
@click.option(
    "--overlap",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_OVERLAP,
    show_default=True,
    help="--decontaminate: share of a question's n-grams found in one test question.",
)
@click.option(
    "--require-pot-agreement",
    "require_pot",
    is_flag=True,
    help="Keep only corrections (and --with-cot samples) whose program agreed with their "
    "answer in `lemagen crosscheck` (dropped: pot_disagree, pot_error, pot_timeout, "
    "pot_unchecked).",
)
def filter_cmd(
    io: RunIO,
    require_pot: bool,
    with_cot: bool,
    with_meta: bool,
    test_sets: tuple[str, ...],
    ngram: int,
    overlap: float,
) -> None:
    """Keep corrections that reach the gold answer; write LEMA fine-tuning JSONL.

    A correction is kept when it parsed, was not truncated, its incorrect step exists in the
    original solution, the steps before that step are unchanged, that step and the solution
    are changed, its corrected final answer equals gold, and it is not a duplicate of one
    already kept (nor, with --decontaminate, overlapping a test question).
    Output lines are {"prompt", "completion"} exactly as LEMA trains on them. The funnel
    (in, kept, dropped by reason) goes to stderr.

    \b
    Example:
      lemagen filter corrections.jsonl --rejects dropped.jsonl > train.jsonl
    """
    stage = lema.filter_stage(
        with_cot=with_cot,
        with_meta=with_meta,
        decontaminate=test_sets,
        ngram=ngram,
        overlap=overlap,
        require_pot_agreement=require_pot,
    )
    io.run(stage)
