"""`lemagen batches`: the provider batches the request store knows about; list and cancel."""

from __future__ import annotations

import os
from pathlib import Path

import click

from lemagen.api.endpoint import check_api_key
from lemagen.cli.app import EPILOG, cli
from lemagen.engine import EngineConfig, default_cache_dir
from lemagen.engine.batches import BatchRunner, describe_jobs
from lemagen.engine.batching import BatchConfig
from lemagen.records.jsonl import RecordWriter
from lemagen.redact import remember


def _runner(cache_dir: Path | None, api_key_env: str) -> BatchRunner:
    api_key = os.environ.get(api_key_env) or None
    remember(api_key)
    check_api_key(api_key, f"${api_key_env}")
    directory = cache_dir or default_cache_dir()
    config = EngineConfig(
        base_urls=["(each batch's own)"], api_key=api_key, cache_dir=directory, batch=BatchConfig()
    )
    return BatchRunner(config, say=lambda message: click.echo(message, err=True))


_CACHE = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LEMAGEN_CACHE_DIR",
    help="The request store [env LEMAGEN_CACHE_DIR; default: the user cache dir + lemagen].",
)
_KEY = click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="NAME",
    help="Environment variable holding the API key.",
)


@cli.group(name="batches", invoke_without_command=True, epilog=EPILOG)
@_CACHE
@_KEY
@click.option(
    "--refresh", is_flag=True, help="Ask the provider for the current status of running batches."
)
@click.pass_context
def batches_cmd(
    ctx: click.Context, cache_dir: Path | None, api_key_env: str, refresh: bool
) -> None:
    """List the provider batches that --batch runs submitted (JSONL on stdout: batch_id,
    status, request_counts, created, endpoint, model, base_url, ...); `cancel` cancels them.

    A batch is collected (its results stored) by re-running the command that submitted it.

    \b
    Example:
      lemagen batches --refresh
      lemagen batches cancel --all
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = (cache_dir, api_key_env)
        return
    runner = _runner(cache_dir, api_key_env)
    try:
        if refresh:
            for job in runner.ledger.jobs(open_only=True):
                runner.refresh(job)
        writer = RecordWriter("-")
        writer.write_all(describe_jobs(runner.ledger))
        writer.close()
    finally:
        runner.close()


@batches_cmd.command(name="cancel")
@click.argument("batch_ids", nargs=-1, metavar="[BATCH_ID]...")
@click.option("--all", "cancel_all", is_flag=True, help="Cancel every batch still running.")
@click.pass_obj
def cancel_cmd(obj: tuple[Path | None, str], batch_ids: tuple[str, ...], cancel_all: bool) -> None:
    """Cancel submitted batches (a re-run of their command then stores what they finished
    and sends the rest in a new batch)."""
    if not batch_ids and not cancel_all:
        raise click.UsageError("give batch ids, or --all")
    runner = _runner(*obj)
    try:
        jobs = {j.batch_id: j for j in runner.ledger.jobs(open_only=True) if j.batch_id}
        unknown = [b for b in batch_ids if b not in jobs]
        if unknown:
            raise click.UsageError(f"not a running batch of this request store: {unknown[0]}")
        for batch_id in sorted(jobs) if cancel_all else batch_ids:
            status = runner.cancel(jobs[batch_id])
            click.echo(f"batch {batch_id}: {status}", err=True)
    finally:
        runner.close()
