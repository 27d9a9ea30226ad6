"""CoTnPoT's command (`lemagen.cotnpot`): `crosscheck`."""

from __future__ import annotations

from typing import Any

import click

from lemagen.api import cotnpot
from lemagen.cli.app import EPILOG, cli
from lemagen.cli.options import RunIO, endpoint, endpoint_options, io_options


@cli.command(epilog=EPILOG)
@io_options
@click.option("-m", "--model", required=True, help="Coder model that writes the programs.")
@click.option(
    "--prompt",
    "prompt_name",
    default="crosscheck",
    show_default=True,
    metavar="NAME|PATH",
    help="Coder prompt: a shipped name or a file with {{question}} and {{solution}}.",
)
@click.option(
    "--all",
    "check_all",
    is_flag=True,
    help="Check every record with an answer, not only those whose answer is correct.",
)
@click.option(
    "--program-timeout",
    type=click.FloatRange(0.1),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Wall-clock (and CPU) limit of each program; it is killed after it.",
)
@click.option(
    "--program-memory",
    type=click.IntRange(64),
    default=1024,
    show_default=True,
    metavar="MB",
    help="Address-space limit of each program.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Programs run in N sandboxes at once [default: the number of cores].",
)
@endpoint_options(n_default=None, temperature_default=0.0)
def crosscheck(
    io: RunIO,
    model: str,
    prompt_name: str,
    check_all: bool,
    program_timeout: float,
    program_memory: int,
    workers: int | None,
    **opts: Any,
) -> None:
    """Cross-check chains of thought with programs (CoTnPoT).

    INPUT is `sample`, `correct` or `inject` output. For each record whose answer is correct
    (every record with an answer with --all), a coder model rewrites the chain of thought (a
    correction's corrected solution) as a Python program that prints the final answer; the
    program runs in a sandbox (bubblewrap: no network, no files outside an empty directory,
    no child processes, limited CPU, memory and output; see docs/cotnpot.md) and its printed
    answer is compared with the record's by the grader. Records gain pot_program,
    pot_answer, pot_verdict (agree, disagree, error, timeout) and pot_meta; other records
    pass through. `filter --require-pot-agreement` and `export --require-pot-agreement`
    then keep only what agrees.

    \b
    Example:
      lemagen crosscheck corrections.jsonl -m Qwen/Qwen2.5-Coder-7B-Instruct > checked.jsonl
    """
    stage = cotnpot.crosscheck_stage(
        model=model,
        prompt=prompt_name,
        check_all=check_all,
        program_timeout=program_timeout,
        program_memory=program_memory,
        workers=workers,
        **endpoint(opts),
    )
    io.run(stage, dry_run=opts["dry_run"])
