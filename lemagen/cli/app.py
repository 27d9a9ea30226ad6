"""The `lemagen` command group, its exit codes, and the console entry point."""

from __future__ import annotations

import importlib
import os
import sys
from typing import IO, Any

import click

from lemagen.cli.config import (
    CONFIG_NAME,
    configure_logging,
    load_config,
    name_envvars,
    version_text,
)
from lemagen.errors import (
    EXIT_BATCH_PENDING,
    EXIT_BUDGET,
    EXIT_CANNOT_WRITE,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_ROWS_FAILED,
    LemagenError,
    OutputClosed,
)

EPILOG = f"""\b
Exit codes: 0 success; 1 bad input (the message names file:line); 2 usage error;
3 endpoint unreachable, API key rejected, model unknown or redirected;
{EXIT_ROWS_FAILED} finished, but some requests failed (set aside in --rejects; re-running retries
only those); {EXIT_BUDGET} --max-cost reached (finished rows kept); {EXIT_CANNOT_WRITE} disk full:
the output or the request store cannot be written (nothing more is sent);
{EXIT_BATCH_PENDING} --batch without --wait: a batch is still running (re-run to collect it);
{EXIT_INTERRUPTED} interrupted; {EXIT_OUTPUT_CLOSED} the reader of stdout went away.
"""


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit()


# Which module of lemagen.cli defines each command: named after the method package that holds
# the command's stage (lemagen/<method>/<command>.py) and its builder (lemagen/api/<method>.py).
COMMAND_MODULES = {
    "sample": "lema",
    "correct": "lema",
    "evolve": "lema",
    "filter": "lema",
    "inject": "mistakes",
    "analyze": "lemma",
    "smooth": "lemma",
    "art": "art",
    "crosscheck": "cotnpot",
    "grade": "curate",
    "export": "curate",
    "stats": "curate",
    "batches": "batches",
}


class CommandError(click.ClickException):
    """A `LemagenError` as the command line shows it: one line on stderr (options named as
    flags), the error's exit code."""

    def __init__(self, error: LemagenError) -> None:
        super().__init__(error.format_message(flags=True))
        self.exit_code = error.exit_code  # type: ignore[misc]
        self.is_error = error.is_error

    def show(self, file: IO[Any] | None = None) -> None:
        if self.is_error:
            super().show(file)
        else:  # not a failure (a batch still running): no "Error:" prefix
            click.echo(self.format_message(), err=True)


class LazyGroup(click.Group):
    """The `lemagen` group: a command's module (and the stages it builds) is imported when the
    command is looked up, not at start, so `lemagen filter` does not load the request engine's
    batch code or the LaTeX parser (about a tenth of a second of every run's start-up,
    benchmarks/bench_stages.py). Listing the commands (--help, completion) loads them all."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> None:
        """Import the module that defines command `name` (and name its options' variables)."""
        module = COMMAND_MODULES.get(name)
        if module is not None and name not in self.commands:
            importlib.import_module(f"lemagen.cli.{module}")
            name_envvars(self)

    def load_all(self) -> None:
        for name in COMMAND_MODULES:
            self.load(name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; the library's errors become the command line's."""
        try:
            return super().invoke(ctx)
        except LemagenError as exc:
            raise CommandError(exc) from None


@click.group(
    cls=LazyGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the versions of lemagen, its answer checkers, the request store's schema, the "
    "record schema, Python and the key libraries, and exit.",
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help=f"Option values from this TOML file [default: ./{CONFIG_NAME} when it exists]. A "
    "flag beats its environment variable, which beats the file, which beats the default.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log each request sent and each row set aside, and why, on stderr (-vv: also the "
    "request bodies). API keys never appear.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Make learning-from-mistakes (LEMA) fine-tuning data for math reasoning models.

    Corrections of wrong samples (sample, correct, filter, export) or of mistakes injected
    into gold solutions (inject); LEMMA's error types (analyze, inject --model) and
    trajectories (export -f lemma, smooth); step labels (export -f prm, math-shepherd); ART
    asker and truster records (art); a report of a run (stats).

    \b
    Offline, no model needed (mistakes injected into gold solutions):
      lemagen inject problems.jsonl | lemagen filter > train.jsonl
    Pipeline (any OpenAI-compatible endpoint):
      lemagen sample problems.jsonl -m MODEL | lemagen correct -m CORRECTOR \\
        | lemagen filter > train.jsonl

    Every command reads JSONL from a file or stdin (-), or gzip/zstd JSONL, Parquet, CSV or a
    Hugging Face dataset (hf:NAME[:CONFIG]:SPLIT), and writes JSONL to stdout (or -o, also
    .parquet); progress and summaries go to stderr.

    Every option can also come from an environment variable named after the command and the
    flag (LEMAGEN_SAMPLE_MAX_TOKENS for `sample --max-tokens`; each --help shows it) or from
    lemagen.toml (--config).
    """
    configure_logging(verbose)
    assert isinstance(ctx.command, click.Group)
    defaults = load_config(config_path, ctx.command, ctx)
    if defaults:
        ctx.default_map = {**(ctx.default_map or {}), **defaults}


def main() -> None:
    """Console entry point: maps Ctrl-C and a closed stdout to quiet exits."""
    try:
        cli.main(prog_name="lemagen", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        if exc.exit_code == EXIT_CANNOT_WRITE:
            try:
                sys.stdout.flush()
            except OSError:
                _drop_stdout()  # what stdout still buffers cannot be written either
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (OutputClosed, BrokenPipeError):
        # The reader of our stdout went away (`| head`): stop quietly, as `cat` would.
        _drop_stdout()
        sys.exit(EXIT_OUTPUT_CLOSED)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail noisily."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
