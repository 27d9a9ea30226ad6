"""Expected errors and their exit codes.

Every error a user can cause is one of these: the CLI prints its message as one line on stderr
and exits with its code, without a traceback. A traceback means a bug.
"""

from __future__ import annotations

from typing import IO, Any

import click

from lemagen.redact import redact

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # malformed JSONL, missing field, unreadable gold answer, broken prompt file
EXIT_USAGE = 2  # click's own code for a bad option or argument
EXIT_ENDPOINT = 3  # endpoint unreachable, key rejected, model unknown, redirected
EXIT_ROWS_FAILED = 4  # the run finished, but some rows failed and were set aside
EXIT_BUDGET = 5  # --max-cost reached: finished rows written, the rest not sent
EXIT_CANNOT_WRITE = 6  # disk full or I/O error: the output or the request store cannot be written
EXIT_BATCH_PENDING = 75  # --batch without --wait: a batch still runs; re-run to collect it
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_OUTPUT_CLOSED = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as shells do


class LemagenError(click.ClickException):
    """Bad input or data. The message names the place (`file:line: ...`). Its text is
    redacted: an endpoint's error that echoes a key never reaches the terminal."""

    exit_code = EXIT_BAD_INPUT

    def format_message(self) -> str:
        return redact(super().format_message())


class InputError(LemagenError):
    """One input row is unusable. `reason` is a short machine-readable tag."""

    def __init__(self, message: str, *, reason: str = "bad_row") -> None:
        super().__init__(message)
        self.reason = reason


class PromptError(LemagenError):
    """A prompt template is malformed or does not fit the variables of its stage."""


class EndpointError(LemagenError):
    """The endpoint cannot serve this run at all (unreachable, bad key, unknown model)."""

    exit_code = EXIT_ENDPOINT


class CannotWrite(LemagenError):
    """An output file or the request store cannot be written (disk full, I/O error): nothing
    more is sent, and what arrived is kept as far as it can be."""

    exit_code = EXIT_CANNOT_WRITE


class RowsFailed(click.ClickException):
    """The run finished, but some rows failed; the summary line has already been printed."""

    exit_code = EXIT_ROWS_FAILED


class BudgetReached(click.ClickException):
    """--max-cost stopped the run; finished rows are written, re-running sends the rest."""

    exit_code = EXIT_BUDGET


class BatchPending(click.ClickException):
    """--batch without --wait: batches were submitted (or are still running); re-running the
    same command collects them. 75 is sysexits' EX_TEMPFAIL: try again later."""

    exit_code = EXIT_BATCH_PENDING

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True)  # not an error: no "Error:" prefix


class OutputClosed(Exception):
    """The output stream was closed by its reader; the run stops quietly."""
