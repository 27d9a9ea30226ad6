"""LEMMA's commands (`lemagen.lemma`): `analyze` (error types) and `smooth` (trajectories
rewritten fluently by a model)."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api import lemma
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import RunIO, endpoint, endpoint_options, io_options
from lemagen.lemma.trajectories import DEFAULT_RESTART_RATE


@cli.command(epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="Analyser model (GPT-4 class).")
@click.option(
    "--prompt",
    "prompt_name",
    default="analyze",
    show_default=True,
    metavar="NAME|PATH",
    help="Analyser prompt: a shipped name or a file with {{question}}, {{gold}}, "
    "{{reference}}, {{steps}} and {{taxonomy}}.",
)
@endpoint_options(n_default=None, temperature_default=0.0)
def analyze(io: RunIO, model: str, prompt_name: str, **opts: Any) -> None:
    """Label each wrong sample with its first erroneous step and error type (LEMMA).

    INPUT is `lemagen sample` output. For each wrong sample an analyser model names the first
    step with an error and its type from LEMMA's taxonomy (calculation_error, counting_error,
    context_value_error, hallucination, unit_conversion_error, operator_error,
    formula_confusion, missing_step, contradictory_step, question_misinterpretation,
    confusing_concept, nonsensical_output). Replies are read in the prompt's layout, as JSON,
    with markdown, thinking or chatter around them; a reply that cannot be read, names a type
    outside the taxonomy, finds no error or names a step the sample lacks is set aside
    (--rejects) with its reason. Other samples pass through. `lemagen stats` shows the
    distribution per reasoner; `lemagen inject --model M --types-from` draws from it.

    \b
    Example:
      lemagen analyze wrong.jsonl -m gpt-4o > analysis.jsonl
    """
    stage = lemma.analyze_stage(model=model, prompt=prompt_name, **endpoint(opts))
    io.run(stage, dry_run=opts["dry_run"])


@cli.command(epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="The smoothing model (GPT-4 class).")
@click.option(
    "--restart-rate",
    type=click.FloatRange(0, 1),
    default=DEFAULT_RESTART_RATE,
    show_default=True,
    metavar="R",
    help="The share of trajectories that start afresh (Fresh & Restart) instead of fixing "
    "the step (Fix & Continue), as in `export -f lemma`.",
)
@click.option(
    "--prompt",
    "prompt_name",
    default="smooth",
    show_default=True,
    metavar="NAME|PATH",
    help="Smoothing prompt (placeholders {{question}} and {{trajectory}}).",
)
@endpoint_options(n_default=None, temperature_default=0.7)
def smooth(io: RunIO, model: str, restart_rate: float, prompt_name: str, **opts: Any) -> None:
    """Rewrite LEMMA trajectories as fluent text with a model, checking that the work stays.

    INPUT is `lemagen correct` or `lemagen inject` output. Each correction `lemagen filter`
    keeps becomes the trajectory `lemagen export -f lemma` writes with the same --seed and
    --restart-rate (the wrong steps through the incorrect one, the explanation, then the fix
    or a fresh solution); the model rewrites it (our prompt `smooth`). A rewrite is written
    only if its final answer is still gold (else set aside as smooth_wrong_answer) and every
    number of the trajectory (its steps, the wrong one included, and the explanation) is still
    in it at least as often (else smooth_changed_values). Output: the alpaca rows
    `export -f lemma` writes, smoothed. Requests go through the request store, so a re-run
    pays nothing twice.

    \b
    Example:
      lemagen smooth corrections.jsonl -m gpt-4o --rejects rough.jsonl > lemma.jsonl
    """
    stage = lemma.smooth_stage(
        model=model, restart_rate=restart_rate, prompt=prompt_name, **endpoint(opts)
    )
    io.run(stage, dry_run=opts["dry_run"])
