"""Expected errors and their exit codes.

Every error a user can cause is a `LemagenError`: it carries the exit code a command takes for
it, and its message is one line naming the place (`file:line: ...`) or the option. The library
raises them as plain exceptions (nothing here depends on the command line); the CLI prints the
message on stderr and exits with the code, without a traceback (`lemagen.cli.app`). A
traceback means a bug.

A `UsageError` names options by the name the caller used: the Python API's keyword
(`keep='wrongg'`), the command's flag (`--keep 'wrongg'`) when the CLI shows it.
"""

from __future__ import annotations

import re

from lemagen.redact import redact
from lemagen.terms import Reason

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # malformed JSONL, missing field, unreadable gold answer, broken prompt file
EXIT_USAGE = 2  # a bad option or argument
EXIT_ENDPOINT = 3  # endpoint unreachable, key rejected, model unknown, redirected
EXIT_ROWS_FAILED = 4  # the run finished, but some rows failed and were set aside
EXIT_BUDGET = 5  # --max-cost reached: finished rows written, the rest not sent
EXIT_CANNOT_WRITE = 6  # disk full or I/O error: the output or the request store cannot be written
EXIT_BATCH_PENDING = 75  # --batch without --wait: a batch still runs; re-run to collect it
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_OUTPUT_CLOSED = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as shells do


class LemagenError(Exception):
    """Bad input or data. The message names the place (`file:line: ...`). Its text is
    redacted: an endpoint's error that echoes a key never reaches the terminal."""

    exit_code = EXIT_BAD_INPUT
    is_error = True  # False: an exit that is not a failure (shown without "Error:")

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format_message(self, *, flags: bool = False) -> str:
        """The message, redacted; `flags`: options named as the command's flags."""
        return redact(self.message)

    def __str__(self) -> str:
        return self.format_message()


class InputError(LemagenError):
    """One input row is unusable. `reason` is a short machine-readable tag."""

    def __init__(self, message: str, *, reason: Reason = "bad_row") -> None:
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


class OutputFailed(CannotWrite):
    """stdout, -o or --rejects cannot be written. A model-calling run sends nothing more,
    stores the requests in flight and counts them in the message (`Engine.in_flight_outcome`)."""


class RowsFailed(LemagenError):
    """The run finished, but some rows failed; the summary line has already been printed."""

    exit_code = EXIT_ROWS_FAILED


class BudgetReached(LemagenError):
    """--max-cost stopped the run; finished rows are written, re-running sends the rest."""

    exit_code = EXIT_BUDGET


class BatchPending(LemagenError):
    """--batch without --wait: batches were submitted (or are still running); re-running the
    same command collects them. 75 is sysexits' EX_TEMPFAIL: try again later."""

    exit_code = EXIT_BATCH_PENDING
    is_error = False


_OPTION = re.compile(r"\{(\w+)(=?)\}")


class UsageError(LemagenError):
    """An option's value is wrong, or options do not go together. The message names options
    as `{name}` (shown as `name`, or `--name` by the CLI) and `{name=}` for an option with
    its value (`name='x'`, or `--name 'x'`); `values` holds those values.

    >>> str(UsageError("{keep=}: choose from wrong, all", keep="wrongg"))
    "keep='wrongg': choose from wrong, all"
    >>> UsageError("{chat} applies to {format} trl only").format_message(flags=True)
    '--chat applies to --format trl only'
    """

    exit_code = EXIT_USAGE

    def __init__(self, template: str, **values: object) -> None:
        self.template = template
        self.values = values
        super().__init__(self._render(flags=False))

    def format_message(self, *, flags: bool = False) -> str:
        return redact(self._render(flags=flags))

    def _render(self, *, flags: bool) -> str:
        def option(match: re.Match[str]) -> str:
            name, with_value = match.group(1), match.group(2)
            shown = "--" + name.replace("_", "-") if flags else name
            if not with_value:
                return shown
            value = self.values[name]
            return f"{shown} {value!r}" if flags else f"{shown}={value!r}"

        return _OPTION.sub(option, self.template)


class OutputClosed(Exception):
    """The output stream was closed by its reader; the run stops quietly."""
