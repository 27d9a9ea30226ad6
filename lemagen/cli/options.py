"""Options shared by several commands. What they build (the stage, its engine configuration)
is `lemagen.api.<method>`, shared with the Python API."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from lemagen.api.endpoint import DEFAULTS
from lemagen.cli.running import run_stage
from lemagen.engine import DEFAULT_BASE_URL, TRANSPORTS
from lemagen.errors import EXIT_BATCH_PENDING, EXIT_BUDGET
from lemagen.records import TASKS
from lemagen.records.inputs import INPUT_FORMATS
from lemagen.records.parquet import is_parquet
from lemagen.stage.base import Stage

F = TypeVar("F", bound=Callable[..., Any])
MAX_TOKENS = 2**31 - 1  # --max-tokens at most: an int32, as many servers read it


@dataclass(frozen=True)
class RunIO:
    """Where a command reads and writes, as its io options say."""

    input_path: str
    output: str
    rejects: str | None
    skip_bad_rows: bool
    quiet: bool
    input_format: str = "auto"

    def run(self, stage: Stage[Any], *, dry_run: bool = False) -> None:
        self.check()
        run_stage(
            stage,
            [self.input_path],
            output=self.output,
            rejects=self.rejects,
            skip_bad_rows=self.skip_bad_rows,
            quiet=self.quiet,
            dry_run=dry_run,
            input_format=self.input_format,
        )

    def check(self) -> None:
        """Refuse what would destroy data: an output that is the input, and set-aside rows
        mixed into the records on stdout."""
        if self.rejects == "-" and self.output == "-":
            raise click.UsageError("--rejects - would mix set-aside rows into stdout: give a file")
        if is_parquet(self.rejects):
            raise click.UsageError("--rejects is written as JSONL: give a .jsonl name")
        for out, name in ((self.output, "-o"), (self.rejects, "--rejects")):
            if out in (None, "-") or self.input_path == "-":
                continue
            try:
                same = os.path.samefile(out, self.input_path)
            except OSError:
                same = False
            if same:
                raise click.UsageError(f"{name} {out} is the input file: it would be emptied")


INPUT_HELP = (
    "INPUT's format [default: auto: by its name; hf:NAME[:CONFIG]:SPLIT or a save_to_disk "
    "directory is a Hugging Face dataset, .parquet Parquet, .csv CSV, anything else JSONL, "
    "gzip or zstd compressed or not]."
)


def input_format_option(func: F) -> F:
    return click.option(
        "--input-format",
        type=click.Choice(INPUT_FORMATS),
        default="auto",
        help=INPUT_HELP,
    )(func)


def io_options(func: F) -> F:
    """INPUT, --input-format, -o, --rejects, --skip-bad-rows and -q, handed to the command
    as one `io`."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        input_path: str,
        output: str,
        rejects: str | None,
        skip_bad_rows: bool,
        quiet: bool,
        input_format: str,
        **kwargs: Any,
    ) -> Any:
        io = RunIO(input_path, output, rejects, skip_bad_rows, quiet, input_format)
        return func(*args, io=io, **kwargs)

    options = [
        click.argument("input_path", metavar="INPUT", default="-"),
        input_format_option,
        click.option(
            "-o",
            "--output",
            default="-",
            show_default=True,
            metavar="PATH",
            help="Output JSONL, or Parquet for a .parquet name.",
        ),
        click.option(
            "--rejects",
            metavar="PATH",
            help="Write every set-aside row here as JSONL with a machine-readable 'reason'.",
        ),
        click.option(
            "--skip-bad-rows",
            is_flag=True,
            help="Set bad input rows aside (in --rejects) instead of stopping at the first.",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="No progress bar and no summary (--dry-run still writes its estimate: it is "
            "the dry run's result).",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


# Prices, for every model a command calls (and every model whose usage `stats` reads).
PRICE_OPTIONS = [
    click.option(
        "--price-in",
        type=click.FloatRange(0),
        metavar="USD",
        help="Dollars per million prompt tokens [default: the built-in table "
        "(lemagen/engine/prices.py, each price with the date it was checked), else "
        "unknown; a model not in the table needs both --price-in and --price-out].",
    ),
    click.option(
        "--price-out",
        type=click.FloatRange(0),
        metavar="USD",
        help="Dollars per million completion tokens (reasoning tokens included).",
    ),
    click.option(
        "--price-cached",
        type=click.FloatRange(0),
        metavar="USD",
        help="Dollars per million cached prompt tokens (usage.prompt_tokens_details."
        "cached_tokens) [default: the table's cached rate, else the input price].",
    ),
]


def price_options(func: F) -> F:
    for option in reversed(PRICE_OPTIONS):
        func = option(func)
    return func


def endpoint_options(
    n_default: int | None, temperature_default: float, *, seed: bool = True
) -> Callable[[F], F]:
    """The options of a command that calls models (`n_default=None`: the command has no -n;
    `seed=False`: it has a --seed of its own)."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--base-url",
                "base_urls",
                multiple=True,
                envvar="OPENAI_BASE_URL",
                metavar="URL",
                help=f"OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 [env "
                f"OPENAI_BASE_URL; default: {DEFAULT_BASE_URL}]. Repeat to spread requests over "
                "several servers (vLLM replicas); one that goes down is taken out of rotation.",
            ),
            click.option(
                "--api-key-env",
                default=DEFAULTS["api_key_env"],
                show_default=True,
                metavar="NAME",
                help="Environment variable holding the API key (local servers need none).",
            ),
            click.option(
                "--api",
                type=click.Choice(["chat", "completion"]),
                default=DEFAULTS["api"],
                show_default=True,
                help="Chat completions or plain completions endpoint.",
            ),
            click.option(
                "-n",
                "n",
                type=click.IntRange(1),
                default=n_default or 1,
                show_default=True,
                help="Samples per prompt, asked for in one request (API 'n'). Raising it later "
                "sends only the new samples.",
            ),
            click.option(
                "--temperature",
                type=click.FloatRange(0),
                default=temperature_default,
                show_default=True,
                help="Sampling temperature, sent with every request.",
            ),
            click.option(
                "--top-p",
                type=click.FloatRange(0, 1),
                default=None,
                help="Nucleus sampling: sent as top_p when given, else the server's default.",
            ),
            click.option(
                "--system",
                metavar="TEXT|@FILE",
                help="A system message before every prompt (chat); text, or @ and a file.",
            ),
            click.option(
                "--stop",
                multiple=True,
                metavar="TEXT",
                help="Stop sequence (repeatable). With --api completion and none given: a "
                "blank line and 'Question:' or 'Problem:', where a base model starts inventing "
                "the next few-shot item.",
            ),
            click.option(
                "--extra-body",
                metavar="JSON",
                help="More request fields, merged into every request (and its store key), e.g. "
                '\'{"chat_template_kwargs": {"enable_thinking": true}}\'.',
            ),
            click.option(
                "--max-tokens-param",
                type=click.Choice(["auto", "max_tokens", "max_completion_tokens"]),
                default=DEFAULTS["max_tokens_param"],
                show_default=True,
                help="The request field for --max-tokens; auto: max_completion_tokens for the "
                "models that refuse max_tokens (OpenAI o1, o3, o4, gpt-5), else max_tokens.",
            ),
            click.option(
                "--max-tokens",
                type=click.IntRange(1, MAX_TOKENS),
                default=DEFAULTS["max_tokens"],
                show_default=True,
                help="Completion tokens allowed per sample (the request field: "
                "--max-tokens-param); the worst case the budget and the dry-run estimate count.",
            ),
            click.option(
                "--seed",
                type=click.IntRange(-(2**63), 2**63 - 1),  # what a server's JSON reader takes
                default=None,
                help="Sampling seed sent to the server.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1),
                default=DEFAULTS["concurrency"],
                show_default=True,
                help="Most requests in flight at once, per endpoint; each endpoint adapts "
                "below it on 429s and timeouts, and paces by its x-ratelimit-limit-requests. "
                "Output lines are written as rows finish, not in input order.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(0, min_open=True),
                default=DEFAULTS["timeout"],
                show_default=True,
                help="Seconds per request.",
            ),
            click.option(
                "--max-response-mb",
                type=click.IntRange(1),
                default=DEFAULTS["max_response_mb"],
                show_default=True,
                metavar="MIB",
                help="Largest response body read, in MiB, as sent and once decompressed (a "
                "gzip body may also inflate at most 100-fold past its first MiB): a larger "
                "one is a failed attempt, retried like a 5xx and then set aside.",
            ),
            click.option(
                "--max-retries",
                type=click.IntRange(0),
                default=DEFAULTS["max_retries"],
                show_default=True,
                help="Retries on 429, 5xx, timeouts and dropped connections, with exponential "
                "backoff and jitter (its first step while most other calls get through), "
                "waiting at least what Retry-After asks. A 429 counts only when no other call "
                "got through meanwhile. 400-class errors are not retried.",
            ),
            click.option(
                "--retry-delay",
                type=click.FloatRange(0),
                default=DEFAULTS["retry_delay"],
                show_default=True,
                metavar="SECONDS",
                help="First retry delay; doubles per counted retry, up to 60 s.",
            ),
            click.option(
                "--rpm",
                type=click.FloatRange(0, min_open=True),
                help="Client-side limit: requests per minute.",
            ),
            click.option(
                "--tpm",
                type=click.FloatRange(0, min_open=True),
                help="Client-side limit: tokens per minute (prompt estimate + max tokens).",
            ),
            click.option(
                "--cache-dir",
                type=click.Path(file_okay=False, path_type=Path),
                envvar="LEMAGEN_CACHE_DIR",
                help="Request store: every sample received, so a re-run sends only what never "
                "arrived [env LEMAGEN_CACHE_DIR; default: the user cache dir + lemagen].",
            ),
            click.option(
                "--no-cache",
                is_flag=True,
                help="Neither read nor write the request store.",
            ),
            *PRICE_OPTIONS,
            click.option(
                "--max-cost",
                type=click.FloatRange(0),
                metavar="USD",
                help=f"Budget in dollars: billed plus possibly billed plus the worst case of "
                f"the requests in flight never passes it; sending stops when one more request "
                f"could pass it, finished rows are kept (exit {EXIT_BUDGET}).",
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Write the requests that would be sent as JSONL on stdout (those in the "
                "request store left out), their counts and estimated cost (synchronous and "
                "batch) on stderr, even with -q; send nothing.",
            ),
            click.option(
                "--batch",
                is_flag=True,
                help="Send what the request store lacks through the provider's Batch API (half "
                "the price, results within --completion-window) instead of one request at a "
                f"time; without --wait, exit {EXIT_BATCH_PENDING} while a batch runs and re-run "
                "the same command to collect it. Batches go to the first --base-url.",
            ),
            click.option(
                "--wait",
                is_flag=True,
                help="--batch: wait for the batches to finish (progress on stderr).",
            ),
            click.option(
                "--poll-interval",
                type=click.FloatRange(0),
                default=DEFAULTS["poll_interval"],
                show_default=True,
                metavar="SECONDS",
                help="--batch --wait: seconds between looks at a running batch.",
            ),
            click.option(
                "--completion-window",
                default=DEFAULTS["completion_window"],
                show_default=True,
                help="--batch: the batch's completion window (OpenAI accepts only 24h).",
            ),
            click.option(
                "--batch-fallback",
                type=click.Choice(["batch", "sync"]),
                default=DEFAULTS["batch_fallback"],
                show_default=True,
                help="--batch: requests a batch failed to answer go into a new batch (up to "
                "--max-retries times), or are sent synchronously (sync).",
            ),
            click.option(
                "--batch-max-requests",
                type=click.IntRange(1),
                default=DEFAULTS["batch_max_requests"],
                show_default=True,
                help="--batch: most requests per batch input file.",
            ),
            click.option(
                "--batch-max-bytes",
                type=click.IntRange(1),
                default=DEFAULTS["batch_max_bytes"],
                show_default=True,
                help="--batch: most bytes per batch input file.",
            ),
            click.option(
                "--transport",
                type=click.Choice(TRANSPORTS),
                default=DEFAULTS["transport"],
                show_default=True,
                help="HTTP client: http (lemagen's own HTTP/1.1 client, the least CPU per "
                "request; through a proxy it hands requests to aiohttp), aiohttp, or the "
                "official openai SDK.",
            ),
            click.option(
                "--check-timeout",
                type=click.FloatRange(0, min_open=True),
                default=DEFAULTS["check_timeout"],
                show_default=True,
                help="Seconds allowed for one symbolic answer check (then: timeout).",
            ),
        ]
        if n_default is None:
            options = [o for o in options if _option_name(o) != "n"]
        if not seed:
            options = [o for o in options if _option_name(o) != "seed"]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _option_name(option: Callable[[F], F]) -> str:
    """The parameter name a click.option decorator declares (to leave one out)."""
    probe: Any = option(cast(F, lambda: None))
    return str(probe.__click_params__[-1].name)


def task_options(func: F) -> F:
    options = [
        click.option(
            "--task",
            type=click.Choice(TASKS),
            help="gsm8k (numeric answers) or math (LaTeX answers); detected if not given.",
        ),
        click.option(
            "--question-field",
            metavar="NAME",
            help="Field holding the question [default: question, else problem].",
        ),
        click.option(
            "--answer-field",
            metavar="NAME",
            help="Field holding the gold answer or solution [default: answer, else solution].",
        ),
        click.option(
            "--id-field",
            metavar="NAME",
            help="Field holding the problem id [default: id, else a hash of question and "
            "answer]. The input's other fields travel in every record's 'source'.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def endpoint(opts: dict[str, Any]) -> dict[str, Any]:
    """A model-calling command's options as the keywords of its stage builder
    (`lemagen.api.<method>`, e.g. `lemagen.api.lema`): the endpoint options
    (`lemagen.api.Endpoint`), `n` and `temperature`; `--dry-run` stays with the command."""
    kwargs = {k: v for k, v in opts.items() if k not in ("dry_run", "base_urls")}
    kwargs["base_url"] = list(opts["base_urls"])
    return kwargs
