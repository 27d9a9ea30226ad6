"""ART's commands (`lemagen.art`): `art ask` and `art trust`."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api.art import art_ask_stage, art_trust_stage
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import RunIO, endpoint, endpoint_options, io_options


@cli.group(epilog=EPILOG)
def art() -> None:
    """ART data: records to train an Asker (`art ask`) and a Truster (`art trust`).

    \b
    Example:
      lemagen art ask samples.jsonl -m gpt-4o > asker.jsonl
      lemagen art trust corrections.jsonl > truster.jsonl
    """


@art.command(name="ask", epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="Model that writes the sub-questions.")
@click.option(
    "--prompt",
    "prompt_name",
    default="art-ask",
    show_default=True,
    metavar="NAME|PATH",
    help="Sub-question prompt: a shipped name or a file with {{question}} and {{reference}}.",
)
@endpoint_options(n_default=None, temperature_default=0.0)
def art_ask(io: RunIO, model: str, prompt_name: str, **opts: Any) -> None:
    """Asker records: a problem and a prediction, its sub-questions, and whether the
    prediction answers them all.

    INPUT is `lemagen sample --keep all` output (each sample is a prediction). A model writes
    the sub-questions of each problem (one request per problem); answers_all is the
    prediction's verdict against gold (correct: true, wrong: false). Replies with no
    sub-questions are set aside as unparseable; predictions with no answer as no_verdict.

    \b
    Example:
      lemagen art ask samples.jsonl -m gpt-4o > asker.jsonl
    """
    stage = art_ask_stage(model=model, prompt=prompt_name, **endpoint(opts))
    io.run(stage, dry_run=opts["dry_run"])


@art.command(name="trust", epilog=EPILOG)
@io_options
def art_trust(io: RunIO) -> None:
    """Truster records: a problem, an initial and a refined prediction, and the one to trust.

    INPUT is `lemagen correct` (or `inject`) output: each correction's original solution is
    the initial prediction, its corrected solution the refined one, and the preferred one is
    the one that reaches gold. Pairs where both or neither do are set aside (no_preference),
    as are unparseable corrections and those whose incorrect_step is null or not a step of
    the sample (step_out_of_range, as filter drops them). No model is called.

    \b
    Example:
      lemagen art trust corrections.jsonl > truster.jsonl
    """
    io.run(art_trust_stage())
