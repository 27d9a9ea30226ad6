"""Command line: parse options, build the stage objects, map errors to exit codes. No logic."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm

from lemagen import __version__
from lemagen.engine import (
    DEFAULT_BASE_URL,
    TRANSPORTS,
    Call,
    Engine,
    EngineConfig,
    RequestFailed,
    Sampling,
    default_cache_dir,
    describe,
    price_for,
    run_rows,
)
from lemagen.errors import (
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_ROWS_FAILED,
    BudgetReached,
    InputError,
    LemagenError,
    OutputClosed,
    RowsFailed,
)
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT, Grader
from lemagen.records.jsonl import RecordWriter, optional_writer, read_records
from lemagen.records.problems import TASKS, ProblemReader
from lemagen.records.rows import Rejects, iter_rows
from lemagen.stages import templates
from lemagen.stages.correct import CORRECT_VARIABLES, Corrector
from lemagen.stages.decontam import DEFAULT_NGRAM, DEFAULT_OVERLAP, HeldOut
from lemagen.stages.export import FORMATS, PAIR_FORMATS, Exporter, dataset_info_entry
from lemagen.stages.filter import Filter
from lemagen.stages.inject import (
    DEFAULT_TYPES,
    ERROR_TYPES,
    Unusable,
    correction_record,
    inject,
    parse_solution,
)
from lemagen.stages.retry_text import (
    DEFAULT_MARKER,
    DEFAULT_RETRY_RATE,
    retry_record,
    retry_solution,
)
from lemagen.stages.sample import SAMPLE_VARIABLES, Sampler
from lemagen.stages.stats import RunStats, render_html, render_table

F = TypeVar("F", bound=Callable[..., Any])
tqdm.monitor_interval = 0  # no monitor thread: the bars are updated often enough

EPILOG = f"""\b
Exit codes: 0 success; 1 bad input (the message names file:line); 2 usage error;
3 endpoint unreachable, API key rejected or model unknown; {EXIT_ROWS_FAILED} finished, but some
requests failed (set aside in --rejects; re-running retries only those);
{EXIT_BUDGET} --max-cost reached (finished rows kept); {EXIT_INTERRUPTED} interrupted;
{EXIT_OUTPUT_CLOSED} the reader of stdout went away.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lemagen")
def cli() -> None:
    """Make learning-from-mistakes (LEMA) fine-tuning data for math reasoning models.

    \b
    Offline, no model needed (mistakes injected into gold solutions):
      lemagen inject problems.jsonl | lemagen filter > train.jsonl
    Pipeline (any OpenAI-compatible endpoint):
      lemagen sample problems.jsonl -m MODEL | lemagen correct -m CORRECTOR \\
        | lemagen filter > train.jsonl

    Every command reads JSONL from a file or stdin (-) and writes JSONL to stdout (or -o);
    progress and summaries go to stderr.
    """


# ---------------------------------------------------------------- shared options


def io_options(func: F) -> F:
    options = [
        click.argument("input_path", metavar="INPUT", default="-"),
        click.option(
            "-o", "--output", default="-", show_default=True, metavar="PATH", help="Output JSONL."
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
        click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def endpoint_options(n_default: int, temperature_default: float) -> Callable[[F], F]:
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
                default="OPENAI_API_KEY",
                show_default=True,
                metavar="NAME",
                help="Environment variable holding the API key (local servers need none).",
            ),
            click.option(
                "--api",
                type=click.Choice(["chat", "completion"]),
                default="chat",
                show_default=True,
                help="Chat completions or plain completions endpoint.",
            ),
            click.option(
                "-n",
                "n",
                type=click.IntRange(1),
                default=n_default,
                show_default=True,
                help="Samples per prompt, asked for in one request (API 'n'). Raising it later "
                "sends only the new samples.",
            ),
            click.option(
                "--temperature",
                type=click.FloatRange(0),
                default=temperature_default,
                show_default=True,
            ),
            click.option("--top-p", type=click.FloatRange(0, 1), default=None),
            click.option("--max-tokens", type=click.IntRange(1), default=1024, show_default=True),
            click.option(
                "--seed", type=int, default=None, help="Sampling seed sent to the server."
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1),
                default=64,
                show_default=True,
                help="Requests in flight at once, per endpoint. Output lines are written as "
                "rows finish, not in input order.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(0, min_open=True),
                default=120.0,
                show_default=True,
                help="Seconds per request.",
            ),
            click.option(
                "--max-retries",
                type=click.IntRange(0),
                default=10,
                show_default=True,
                help="Retries on 429, 5xx, timeouts and dropped connections, with exponential "
                "backoff and jitter, honouring Retry-After. 400-class errors are not retried.",
            ),
            click.option(
                "--retry-delay",
                type=click.FloatRange(0),
                default=1.0,
                show_default=True,
                metavar="SECONDS",
                help="First retry delay; doubles per retry, up to 60 s.",
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
            click.option(
                "--price-in",
                type=click.FloatRange(0),
                metavar="USD",
                help="Dollars per million prompt tokens [default: the built-in table, else "
                "unknown].",
            ),
            click.option(
                "--price-out",
                type=click.FloatRange(0),
                metavar="USD",
                help="Dollars per million completion tokens.",
            ),
            click.option(
                "--max-cost",
                type=click.FloatRange(0),
                metavar="USD",
                help=f"Stop sending once spent plus in flight could pass this; finished rows "
                f"are kept (exit {EXIT_BUDGET}).",
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Print the requests, estimated prompt tokens and cost; send nothing.",
            ),
            click.option(
                "--transport",
                type=click.Choice(TRANSPORTS),
                default="aiohttp",
                show_default=True,
                help="HTTP client: aiohttp (fastest) or the official openai SDK.",
            ),
            click.option(
                "--check-timeout",
                type=click.FloatRange(0, min_open=True),
                default=DEFAULT_CHECK_TIMEOUT,
                show_default=True,
                help="Seconds allowed for one symbolic answer check (then: timeout).",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _outputs(
    stack: ExitStack, output: str, rejects: str | None, *, flush_each: bool = True
) -> tuple[RecordWriter, Rejects]:
    """A command's output writer and rejects sink, both closed when `stack` closes."""
    writer = RecordWriter(output, flush_each=flush_each)
    stack.callback(writer.close)
    return writer, Rejects(stack.enter_context(optional_writer(rejects)))


def _engine_config(opts: dict[str, Any], models: Iterable[str]) -> EngineConfig:
    if opts["max_cost"] is not None:
        unpriced = ", ".join(
            m for m in models if not price_for(m, opts["price_in"], opts["price_out"]).known
        )
        if unpriced:
            raise click.UsageError(
                f"--max-cost needs a price for {unpriced}: give --price-in and --price-out"
            )
    return EngineConfig(
        base_urls=list(opts["base_urls"]) or [DEFAULT_BASE_URL],
        api_key=os.environ.get(opts["api_key_env"]) or None,
        api_key_env=opts["api_key_env"],
        api=opts["api"],
        timeout=opts["timeout"],
        max_retries=opts["max_retries"],
        retry_delay=opts["retry_delay"],
        concurrency=opts["concurrency"],
        rpm=opts["rpm"],
        tpm=opts["tpm"],
        cache_dir=None if opts["no_cache"] else (opts["cache_dir"] or default_cache_dir()),
        transport=opts["transport"],
        price_in=opts["price_in"],
        price_out=opts["price_out"],
        max_cost=opts["max_cost"],
    )


def _max_pending(opts: dict[str, Any]) -> int:
    return 2 * int(opts["concurrency"]) * max(1, len(opts["base_urls"])) + 16


def _dry_run(stage: str, engine: Engine, calls: Iterable[list[Call]]) -> None:
    """Count what a run would send, given what the store already holds."""
    rows = requests = samples = cached = prompt_tokens = 0
    cost_in = cost_out = 0.0
    unpriced: set[str] = set()
    for row_calls in calls:
        rows += 1
        for call in row_calls:
            have = engine.cached_samples(call)
            cached += have
            missing = call.n - have
            if missing <= 0:
                continue
            requests += 1
            samples += missing
            tokens, most = call.estimated_tokens(missing)
            prompt_tokens += tokens
            price = engine.price(call.model)
            if not price.known:
                unpriced.add(call.model)
            cost_in += price.cost(tokens, 0)
            cost_out += price.cost(0, most)
    cost = f"${cost_in:.4f} for prompts, at most ${cost_in + cost_out:.4f} with completions"
    if unpriced:
        cost += f" (no price for {', '.join(sorted(unpriced))}: give --price-in/--price-out)"
    click.echo(
        f"{stage} --dry-run: {rows} rows; would send {requests} requests for {samples} "
        f"samples ({cached} already in the request store); ~{prompt_tokens} prompt tokens; "
        f"estimated cost {cost}. Nothing was sent.",
        err=True,
    )


def _sampling(opts: dict[str, Any]) -> Sampling:
    return Sampling(
        temperature=opts["temperature"],
        top_p=opts["top_p"],
        max_tokens=opts["max_tokens"],
        seed=opts["seed"],
    )


def _template(name: str, variables: set[str]) -> templates.Template:
    template = templates.load(name)
    template.check(variables)
    return template


class _Progress:
    """tqdm on stderr (silent when stderr is not a terminal, or with -q): rows done/total,
    and the engine's requests/s, tokens, cost and failures."""

    def __init__(self, quiet: bool, unit: str, total: int | None, engine: Engine | None) -> None:
        # disable=None: silent when stderr is not a terminal.
        self.bar = tqdm(
            desc="lemagen", unit=unit, total=total, disable=True if quiet else None, file=sys.stderr
        )
        self.engine = engine
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        if self.engine is None or self.bar.disable:
            return
        now = time.monotonic()
        if now - self._last >= 0.5:
            self._last = now
            self._postfix(now)

    def _postfix(self, now: float) -> None:
        assert self.engine is not None
        st = self.engine.stats
        rate = st.requests / max(now - self._start, 1e-9)
        self.bar.set_postfix_str(
            f"{rate:.1f} req/s, {st.prompt_tokens + st.completion_tokens} tok, "
            f"${st.cost:.4f}, {st.cached} cached, {st.failed} failed",
            refresh=False,
        )

    def close(self) -> None:
        if self.engine is not None and not self.bar.disable:
            self._postfix(time.monotonic())
        self.bar.close()


def _count_lines(path: str) -> int | None:
    """Rows in a regular input file, for the progress bar's total; None for stdin or pipes."""
    if path == "-" or not os.path.isfile(path):
        return None
    lines = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return lines


def _requests_summary(engine: Engine) -> str:
    st = engine.stats
    return (
        f"requests {st.requests} sent ({st.retries} retries, {st.rate_limited} rate-limited), "
        f"{st.cached} samples from the request store; tokens in {st.prompt_tokens}, "
        f"out {st.completion_tokens}; {describe(st)}"
    )


def _finish(engine: Engine, counts: Counter[str], unread: bool) -> None:
    """The exit code after the summary: budget reached (5), rows failed (4), else 0."""
    if engine.stopped:
        more = " and input rows not read" if unread else ""
        raise BudgetReached(
            f"--max-cost reached: {counts['budget_exhausted']} calls not sent{more}; "
            "finished rows are written; re-run with a higher --max-cost to continue"
        )
    if counts["request_failed"]:
        raise RowsFailed(
            f"{counts['request_failed']} requests failed (see --rejects); "
            "re-running the same command retries only those"
        )


def _summary(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)


def _fmt(counts: Counter[str], keys: list[str]) -> str:
    return ", ".join(
        f"{counts[k]} {k.replace('_', ' ')}" for k in keys if counts[k] or k in keys[:1]
    )


def _by_reason(counts: Counter[str]) -> str:
    """`reason 3, other 1`, most common first, or `none`."""
    return ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"


def _source(path: str) -> str:
    return "<stdin>" if path == "-" else path


# ---------------------------------------------------------------- sample


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
    "--prompt",
    "prompt_name",
    default="sample",
    show_default=True,
    metavar="NAME|PATH",
    help="Sampling prompt: a shipped name or a file with a {{question}} placeholder.",
)
@task_options
@endpoint_options(n_default=4, temperature_default=0.7)
def sample(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    models: tuple[str, ...],
    keep: str,
    prompt_name: str,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
    **opts: Any,
) -> None:
    """Sample chain-of-thought solutions and keep the wrong ones.

    INPUT is problems JSONL (GSM8K, MATH, MATH-500 or any JSONL with --question-field and
    --answer-field); '-' or nothing reads stdin. Each output line is one graded sample with
    its steps, extracted answer, verdict and provenance. Truncated samples, samples with no
    answer and failed requests are set aside (--rejects), never treated as mistakes.

    Every sample received is kept in the request store (--cache-dir), so re-running the same
    command after an interruption or failure sends only what never arrived.

    \b
    Example:
      OPENAI_BASE_URL=http://localhost:8000/v1 \\
        lemagen sample examples/gsm8k.jsonl -m Qwen/Qwen2.5-0.5B-Instruct -n 4 > wrong.jsonl
    """
    template = _template(prompt_name, SAMPLE_VARIABLES)
    reader = ProblemReader(_source(input_path), task, question_field, answer_field)
    config = _engine_config(opts, models)
    sampler = Sampler(
        opts["api"], template, list(models), opts["n"], _sampling(opts), keep == "all"
    )
    counts: Counter[str] = Counter()
    with ExitStack() as stack:
        writer, rejected = _outputs(
            stack, "-" if opts["dry_run"] else output, rejects, flush_each=False
        )
        problems = iter_rows(input_path, reader.read, skip_bad_rows=skip_bad_rows, rejects=rejected)
        engine = Engine(config)
        stack.callback(engine.close)
        if opts["dry_run"]:
            _dry_run("sample", engine, map(sampler.calls, problems))
            return
        grader = stack.enter_context(Grader(opts["check_timeout"]))
        stack.enter_context(engine)
        bar = _Progress(quiet, "problem", _count_lines(input_path), engine)
        stack.callback(bar.close)
        for problem, results in run_rows(
            engine, problems, sampler.calls, max_pending=_max_pending(opts), on_wait=writer.flush
        ):
            outcome = sampler.records(problem, results, grader)
            writer.write_all(outcome.keep)
            counts["written"] += len(outcome.keep)
            for reason, record in outcome.set_aside:
                rejected.add(reason, record)
            counts.update(outcome.counts)
            counts["problems"] += 1
            bar.update(1)
    counts["bad_rows"] = rejected.bad_rows
    _summary(
        quiet,
        "sample: "
        + _fmt(
            counts,
            [
                "problems",
                "samples",
                "correct",
                "wrong",
                "duplicate",
                "truncated",
                "no_answer",
                "check_timeout",
                "request_failed",
                "budget_exhausted",
                "bad_rows",
            ],
        )
        + f"; {counts['written']} written; "
        + _requests_summary(engine),
    )
    _finish(engine, counts, unread=engine.stopped)


# ---------------------------------------------------------------- correct


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
@endpoint_options(n_default=1, temperature_default=0.0)
def correct(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    model: str,
    prompt_name: str | None,
    **opts: Any,
) -> None:
    """Ask a corrector for the incorrect step, an explanation and a corrected solution.

    INPUT is the output of `lemagen sample`. Each wrong sample gets -n corrections, parsed
    into incorrect_step, explanation, corrected_steps, pred and verdict; an unparseable reply
    is kept with its reject_reason (so nothing paid for is lost) and dropped later by
    `lemagen filter`. Samples that are not wrong pass through unchanged. Replies are kept in
    the request store (--cache-dir): re-running sends only what never arrived.

    \b
    Example:
      lemagen correct wrong.jsonl -m gpt-4o > corrections.jsonl
    """
    prompts: dict[str, templates.Template] = {}

    def prompt_for(task: str) -> templates.Template:
        if task not in prompts:
            prompts[task] = _template(prompt_name or f"correct.{task}", CORRECT_VARIABLES)
        return prompts[task]

    if prompt_name:
        prompt_for("gsm8k")
    source = _source(input_path)

    def parse(record: dict[str, Any], lineno: int) -> dict[str, Any]:
        where = f"{source}:{lineno}"
        for name in ("sample_id", "task", "question", "gold", "steps", "verdict"):
            if name not in record:
                raise InputError(
                    f"{where}: missing field {name!r} (is this `lemagen sample` output?)",
                    reason="missing_field",
                )
        if record["task"] not in TASKS:
            raise InputError(f"{where}: unknown task {record['task']!r}", reason="unknown_task")
        if not isinstance(record["steps"], list) or not record["steps"]:
            raise InputError(f"{where}: field 'steps' must be a non-empty list", reason="bad_row")
        corrector_for(record["task"])  # a broken prompt fails before any request
        return record

    sampling = _sampling(opts)
    correctors: dict[str, Corrector] = {}

    def corrector_for(task: str) -> Corrector:
        if task not in correctors:
            correctors[task] = Corrector(opts["api"], prompt_for(task), model, opts["n"], sampling)
        return correctors[task]

    def calls_for(sample_record: dict[str, Any]) -> list[Call]:
        if sample_record["verdict"] != "wrong":
            return []
        return [corrector_for(sample_record["task"]).call(sample_record)]

    config = _engine_config(opts, [model])
    counts: Counter[str] = Counter()
    with ExitStack() as stack:
        writer, rejected = _outputs(
            stack, "-" if opts["dry_run"] else output, rejects, flush_each=False
        )
        samples = iter_rows(input_path, parse, skip_bad_rows=skip_bad_rows, rejects=rejected)
        engine = Engine(config)
        stack.callback(engine.close)
        if opts["dry_run"]:
            _dry_run("correct", engine, map(calls_for, samples))
            return
        grader = stack.enter_context(Grader(opts["check_timeout"]))
        stack.enter_context(engine)
        bar = _Progress(quiet, "sample", _count_lines(input_path), engine)
        stack.callback(bar.close)
        for record, results in run_rows(engine, samples, calls_for, max_pending=_max_pending(opts)):
            bar.update(1)
            if not results:
                counts["passed_through"] += 1
                writer.write(record)
                continue
            counts["wrong_samples"] += 1
            result = results[0]
            if isinstance(result, RequestFailed):
                counts[result.reason] += 1
                rejected.add(result.reason, record, detail=str(result))
                continue
            for correction in corrector_for(record["task"]).records(record, result, grader):
                counts["corrections"] += 1
                if correction["reject_reason"]:
                    counts["unparseable"] += 1
                elif correction["verdict"] == "correct":
                    counts["reach_gold"] += 1
                writer.write(correction)
    counts["bad_rows"] = rejected.bad_rows
    _summary(
        quiet,
        "correct: "
        + _fmt(
            counts,
            [
                "wrong_samples",
                "corrections",
                "reach_gold",
                "unparseable",
                "passed_through",
                "request_failed",
                "budget_exhausted",
                "bad_rows",
            ],
        )
        + "; "
        + _requests_summary(engine),
    )
    _finish(engine, counts, unread=engine.stopped)


# ---------------------------------------------------------------- filter


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
def filter_cmd(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    with_cot: bool,
    with_meta: bool,
    test_sets: tuple[str, ...],
    ngram: int,
    overlap: float,
) -> None:
    """Keep corrections that reach the gold answer; write LEMA fine-tuning JSONL.

    A correction is kept when it parsed, its incorrect step exists in the original solution,
    its corrected solution changes something, and its corrected final answer equals gold.
    Output lines are {"prompt", "completion"} exactly as LEMA trains on them. The funnel
    (in, kept, dropped by reason) goes to stderr.

    \b
    Example:
      lemagen filter corrections.jsonl --rejects dropped.jsonl > train.jsonl
    """
    keep = Filter(with_cot=with_cot, with_meta=with_meta)
    source = _source(input_path)
    total = 0
    tests = HeldOut(ngram, overlap)
    for path in test_sets:
        tests.load(path)

    def judge(
        record: dict[str, Any], lineno: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None, str | None]:
        """(record, training record or None, drop reason, detail)."""
        nonlocal total
        total += 1
        leak = tests.match(str(record.get("question", ""))) if test_sets else None
        if leak is not None:
            return record, None, "contaminated", f"overlaps {leak}"
        out, reason = keep(record, f"{source}:{lineno}")
        detail = record.get("reject_reason") if reason == "unparseable" else None
        return record, out, reason, detail

    with ExitStack() as stack:
        writer, rejected = _outputs(stack, output, rejects)
        for record, out, reason, detail in iter_rows(
            input_path, judge, skip_bad_rows=skip_bad_rows, rejects=rejected
        ):
            if out is not None:
                writer.write(out)
            else:
                assert reason is not None
                rejected.add(reason, record, detail=detail)
    kept = keep.counts["kept_correction"] + keep.counts["kept_cot"]
    _summary(
        quiet,
        f"filter: in {total} ({keep.counts['corrections']} corrections, "
        f"{keep.counts['samples']} samples); kept {kept} ({keep.counts['kept_correction']} "
        f"correction, {keep.counts['kept_cot']} cot); dropped {sum(rejected.counts.values())}: "
        f"{_by_reason(rejected.counts)}",
    )


# ---------------------------------------------------------------- export


@cli.command(name="export", epilog=EPILOG)
@io_options
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="lema",
    show_default=True,
    help="Target format (see below).",
)
@click.option("--chat", is_flag=True, help="trl: conversational {'messages'} records.")
@click.option(
    "--mix",
    is_flag=True,
    help="Also write CoT records for the correct samples in the input, shuffled together "
    "with the corrections (seeded), as LEMA trains.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle and pairing seed.")
@click.option(
    "--max-pairs-per-question",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    metavar="K",
    help="dpo, openai-dpo: at most K pairs per question.",
)
@click.option(
    "--dataset-info",
    metavar="PATH",
    help="alpaca, sharegpt, lemma: add this file's entry to LLaMA-Factory's "
    "dataset_info.json at PATH (created or updated); needs -o.",
)
@click.option(
    "--dataset-name",
    metavar="NAME",
    help="Name of the dataset_info.json entry [default: the output file's stem].",
)
def export_cmd(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    fmt: str,
    chat: bool,
    mix: bool,
    seed: int,
    max_pairs_per_question: int,
    dataset_info: str | None,
    dataset_name: str | None,
) -> None:
    """Write the kept corrections in a trainer's format.

    INPUT is `lemagen correct` or `lemagen inject` output (with `sample --keep all`, the
    correct samples pass through it too). Corrections are kept exactly as `lemagen filter`
    keeps them. Formats:

    \b
      lema        {"prompt", "completion"} as LEMA trains (what filter writes)
      alpaca      {"instruction", "input", "output"} for LLaMA-Factory
      sharegpt    {"conversations": [{"from", "value"}]} for LLaMA-Factory
      openai      {"messages"} for OpenAI fine-tuning
      openai-dpo  {"input", "preferred_output", "non_preferred_output"} (OpenAI DPO)
      trl         {"prompt", "completion"}, or {"messages"} with --chat
      dpo         {"prompt", "chosen", "rejected"}: a corrected vs its original
                  solution, and a correct vs a wrong sample of the same question
      cot         the full corrected chain of thought as a LEMA CoT record
      lemma       a Fix & Continue trajectory (wrong prefix through the incorrect
                  step, a transition phrase, the fix), alpaca-shaped

    \b
    Example:
      lemagen export corrections.jsonl -f sharegpt -o data/lema.jsonl \\
        --dataset-info data/dataset_info.json
    """
    if chat and fmt != "trl":
        raise click.UsageError("--chat applies to --format trl only")
    if mix and fmt in PAIR_FORMATS:
        raise click.UsageError(f"--mix does not apply to --format {fmt} (pairs)")
    if dataset_info is not None:
        if fmt not in ("alpaca", "sharegpt", "lemma"):
            raise click.UsageError("--dataset-info applies to alpaca, sharegpt and lemma")
        if output == "-":
            raise click.UsageError("--dataset-info needs -o: the entry names the data file")
    exporter = Exporter(fmt, chat=chat, mix=mix, seed=seed, max_pairs=max_pairs_per_question)
    source = _source(input_path)

    def convert(
        record: dict[str, Any], lineno: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
        out, reason = exporter.add(record, f"{source}:{lineno}")
        return record, out, reason

    written = 0
    with ExitStack() as stack:
        writer, rejected = _outputs(stack, output, rejects)
        for record, out, reason in iter_rows(
            input_path, convert, skip_bad_rows=skip_bad_rows, rejects=rejected
        ):
            writer.write_all(out)
            written += len(out)
            if reason is not None:
                detail = record.get("reject_reason") if reason == "unparseable" else None
                rejected.add(reason, record, detail=detail)
        for out_record in exporter.finish():
            writer.write(out_record)
            written += 1
    if dataset_info is not None:
        _write_dataset_info(dataset_info, dataset_name, output, fmt)
    made = ", ".join(f"{k} {v}" for k, v in sorted(exporter.counts.items())) or "nothing"
    _summary(
        quiet,
        f"export --format {fmt}: {written} written ({made}); dropped {_by_reason(rejected.counts)}",
    )


def _write_dataset_info(path: str, name: str | None, output: str, fmt: str) -> None:
    info_path = Path(path)
    entries: dict[str, Any] = {}
    if info_path.exists():
        try:
            entries = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LemagenError(f"{path}: cannot read as JSON: {exc}") from None
        if not isinstance(entries, dict):
            raise LemagenError(f"{path}: not a JSON object")
    data = Path(output).resolve()
    file_name = os.path.relpath(data, info_path.resolve().parent)
    entries[name or data.stem] = dataset_info_entry(fmt, file_name)
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- stats


@cli.command(name="stats", epilog=EPILOG)
@click.argument("inputs", metavar="INPUT...", nargs=-1)
@click.option(
    "--json", "as_json", is_flag=True, help="Write the report as one JSON line to stdout."
)
@click.option(
    "--html",
    "html_path",
    metavar="PATH",
    help="Also write a self-contained HTML page with charts (no network needed to view it).",
)
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
def stats_cmd(inputs: tuple[str, ...], as_json: bool, html_path: str | None, quiet: bool) -> None:
    """Report what a run made: funnel, accuracy per reasoner, incorrect-step positions,
    drop reasons, tokens and cost per kept row.

    INPUT... are any stages' outputs in any mix (sample, correct, inject, a --rejects file,
    filter/export output); none or '-' reads stdin. The table goes to stderr, like every
    summary, so stdout stays JSONL: --json writes the report there as one line.

    \b
    Example:
      lemagen stats samples.jsonl corrections.jsonl rejects.jsonl --html report.html
    """
    run_stats = RunStats()
    for path in inputs or ("-",):
        source = _source(path)
        for lineno, record in read_records(path):
            if isinstance(record, InputError):
                raise record
            run_stats.add(record, f"{source}:{lineno}")
    report = run_stats.report()
    if html_path is not None:
        try:
            Path(html_path).write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise LemagenError(f"{html_path}: cannot write: {exc.strerror}") from None
    if as_json:
        writer = RecordWriter("-")
        writer.write(report)
        writer.close()
    if not quiet:
        click.echo(render_table(report), err=True)


# ---------------------------------------------------------------- inject


def _types(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in ERROR_TYPES]
    if unknown or not names:
        given = ", ".join(unknown) or "(none)"
        raise click.BadParameter(
            f"unknown error type {given}; choose from {', '.join(ERROR_TYPES)}"
        )
    return names


@cli.command(name="inject", epilog=EPILOG)
@io_options
@click.option(
    "--types",
    default=",".join(DEFAULT_TYPES),
    show_default=True,
    callback=_types,
    help="Comma-separated error types: calculation, copy (a question number copied "
    "wrongly), operator, skip (a later step moved up: a fake mistake whose final "
    "answer is right).",
)
@click.option(
    "--per-question",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    metavar="K",
    help="Mistakes per problem (distinct, spread over the types).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Same seed, same input: the same bytes out.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lema", "retry"]),
    default="lema",
    show_default=True,
    help="lema: correction records for `lemagen filter`; retry: training text with "
    "mistakes retracted by a marker.",
)
@click.option(
    "--retry-rate",
    type=click.FloatRange(0, 1),
    default=DEFAULT_RETRY_RATE,
    show_default=True,
    help="retry: chance of a mistake before each step. Keep it in 0.1-0.2: at 0.5 "
    "fake-mistake data made accuracy collapse in Physics of LMs 2.2 (avg 95 -> 75) "
    "and the model retried many times per problem.",
)
@click.option(
    "--fake",
    is_flag=True,
    help="retry: fake mistakes (the opening of a later step) instead of real ones.",
)
@click.option(
    "--marker",
    default=DEFAULT_MARKER,
    show_default=True,
    help="retry: the text that retracts a mistaken step.",
)
@task_options
def inject_cmd(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    types: tuple[str, ...],
    per_question: int,
    seed: int,
    fmt: str,
    retry_rate: float,
    fake: bool,
    marker: str,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
) -> None:
    """Make mistakes and their corrections from gold solutions, offline (no model, no key).

    INPUT holds problems with step-by-step gold solutions: GSM8K rationales (with <<a*b=c>>
    calculator annotations) or any solution whose steps carry `a op b = c` arithmetic. One
    result is altered and every later step that uses it is recomputed, so the wrong solution
    is consistent; the record names the incorrect step, explains the change ("Step 2
    computes 48 / 2 as 26, but 48 / 2 = 24.") and gives the gold steps from there. The
    records have the shape `lemagen correct` writes. Problems that cannot be used are
    counted by reason and set aside (--rejects).

    \b
    Example:
      lemagen inject examples/gsm8k.jsonl --per-question 2 | lemagen filter > lema.jsonl
    """
    reader = ProblemReader(_source(input_path), task, question_field, answer_field)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    with ExitStack() as stack:
        writer, rejected = _outputs(stack, output, rejects)
        grader = stack.enter_context(Grader(DEFAULT_CHECK_TIMEOUT))
        bar = _Progress(quiet, "problem", _count_lines(input_path), None)
        stack.callback(bar.close)
        for problem in iter_rows(
            input_path, reader.read, skip_bad_rows=skip_bad_rows, rejects=rejected
        ):
            counts["problems"] += 1
            bar.update(1)
            rng = random.Random(f"{seed}\x1f{problem['id']}")
            try:
                if fmt == "retry":
                    sol = parse_solution(problem, need_arithmetic=False)
                    text, mistakes = retry_solution(
                        sol, problem["question"], rng, rate=retry_rate, fake=fake, marker=marker
                    )
                    meta = {
                        "stage": "inject",
                        "format": "retry",
                        "retry_rate": retry_rate,
                        "fake": fake,
                        "marker": marker,
                        "seed": seed,
                    }
                    writer.write(retry_record(problem, text, mistakes, meta))
                    counts["records"] += 1
                    counts["retries"] += len(mistakes)
                    continue
                sol = parse_solution(problem)
                for mistake in inject(sol, problem["question"], types, per_question, rng):
                    writer.write(correction_record(problem, sol, mistake, grader, seed))
                    counts["records"] += 1
                    counts[mistake.error_type] += 1
            except Unusable as exc:
                skipped[exc.reason] += 1
                rejected.add(exc.reason, problem)
    detail = _by_reason(skipped)
    made = (
        f"{counts['retries']} retries"
        if fmt == "retry"
        else ", ".join(f"{t} {counts[t]}" for t in types)
    )
    _summary(
        quiet,
        f"inject: {counts['problems']} problems, {counts['records']} records "
        f"({made}); skipped {sum(skipped.values())}: {detail}; bad rows {rejected.bad_rows}",
    )


# ---------------------------------------------------------------- grade


@cli.command(epilog=EPILOG)
@io_options
@click.option(
    "--response-field",
    default="response",
    show_default=True,
    metavar="NAME",
    help="Field holding the model output to grade.",
)
@click.option(
    "--check-timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_CHECK_TIMEOUT,
    show_default=True,
    help="Seconds allowed for one symbolic answer check (then: timeout).",
)
@task_options
def grade(
    input_path: str,
    output: str,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    response_field: str,
    check_timeout: float,
    task: str | None,
    question_field: str | None,
    answer_field: str | None,
) -> None:
    """Label existing model outputs: add 'pred' and 'verdict' to each record.

    For outputs sampled elsewhere (offline vLLM, another tool). Each record needs the output
    (--response-field) and a gold answer (GSM8K '#### N' rationale, MATH solution with
    \\boxed{}, or a bare value). verdict is one of correct, wrong, no_answer, timeout.

    \b
    Example:
      lemagen grade outputs.jsonl --response-field completion > graded.jsonl
    """
    reader = ProblemReader(
        _source(input_path), task, question_field, answer_field, require_question=False
    )
    source = _source(input_path)

    def parse(record: dict[str, Any], lineno: int) -> tuple[dict[str, Any], dict[str, Any]]:
        problem = reader.read(record, lineno)
        response = record.get(response_field)
        if not isinstance(response, str):
            raise InputError(
                f"{source}:{lineno}: missing field {response_field!r}", reason="missing_field"
            )
        return record, problem

    counts: Counter[str] = Counter()
    with ExitStack() as stack:
        writer, rejected = _outputs(stack, output, rejects)
        grader = stack.enter_context(Grader(check_timeout))
        bar = _Progress(quiet, "row", _count_lines(input_path), None)
        stack.callback(bar.close)
        for record, problem in iter_rows(
            input_path, parse, skip_bad_rows=skip_bad_rows, rejects=rejected
        ):
            result = grader.grade(problem["task"], problem["gold"], record[response_field])
            counts[result.verdict] += 1
            writer.write({**record, "pred": result.pred, "verdict": result.verdict})
            bar.update(1)
    counts["bad_rows"] = rejected.bad_rows
    _summary(
        quiet, "grade: " + _fmt(counts, ["correct", "wrong", "no_answer", "timeout", "bad_rows"])
    )


def main() -> None:
    """Console entry point: maps Ctrl-C and a closed stdout to quiet exits."""
    try:
        cli.main(prog_name="lemagen", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (OutputClosed, BrokenPipeError):
        # The reader of our stdout went away (`| head`): stop quietly, as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_OUTPUT_CLOSED)
