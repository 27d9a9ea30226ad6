"""`lemagen smooth`: LEMMA trajectories rewritten fluently by a model."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api import build
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import RunIO, endpoint, endpoint_options, io_options
from lemagen.stages.trajectories import DEFAULT_RESTART_RATE


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
    stage = build.smooth_stage(
        model=model, restart_rate=restart_rate, prompt=prompt_name, **endpoint(opts)
    )
    io.run(stage, dry_run=opts["dry_run"])
