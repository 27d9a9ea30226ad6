"""How a command runs its stage: the one run loop (`lemagen.run`) over the command's input
files, into its output file and --rejects, with a progress bar; then its summary on stderr
and its exit status."""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from lemagen.engine import Engine
from lemagen.records.inputs import count_rows
from lemagen.records.jsonl import RecordWriter, optional_writer
from lemagen.records.parquet import Writer, open_output
from lemagen.records.rows import Encoded, Rejects, ToDict, iter_rows
from lemagen.run import Read, Sink, run
from lemagen.stage.base import EngineStage, Stage

tqdm.monitor_interval = 0  # no monitor thread: the bars are updated often enough
# A thread lock: tqdm's default also makes a multiprocessing lock (importing multiprocessing
# and making a semaphore: about 0.1 s of every run), for bars shared across processes,
# which lemagen never has.
tqdm.set_lock(threading.RLock())


def run_stage(
    stage: Stage[Any],
    inputs: Iterable[str],
    *,
    output: str | None = "-",
    rejects: str | None = None,
    skip_bad_rows: bool = False,
    quiet: bool = False,
    dry_run: bool = False,
    input_format: str | None = None,
) -> None:
    """Read every input (in `input_format`, None: by each name) through `stage` with the one
    run loop (`lemagen.run`), writing its records to `output` (None: nothing) and its
    set-aside rows to `rejects`, then print its summary on stderr and raise its exit."""
    paths = list(inputs)
    if dry_run:
        assert isinstance(stage, EngineStage)
        _dry_run(stage, paths, skip_bad_rows, input_format)
        return
    batch = isinstance(stage, EngineStage) and stage.config.batch is not None
    with ExitStack() as stack:
        if batch and "-" in paths:  # stdin is read by every pass
            spool = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "stdin.jsonl"
            with open(spool, "wb") as handle:
                shutil.copyfileobj(sys.stdin.buffer, handle)
            paths = [str(spool) if p == "-" else p for p in paths]
        writer: Writer | None = None
        if output is not None:
            # Engine-driven stages flush whenever they would wait, not after every line; a
            # --batch run writes only after its last pass.
            writer = open_output(output, flush_each=not isinstance(stage, EngineStage))
            stack.callback(writer.close)
        sink = FileSink(writer, Rejects(stack.enter_context(optional_writer(rejects))))
        if isinstance(stage, EngineStage):
            stage.keep_rows = True  # lines are written: kept rows can be written again
        total = count_rows(paths[0], input_format) if len(paths) == 1 else None
        bar = Progress(
            quiet,
            stage,
            total,
            stage.engine if isinstance(stage, EngineStage) and not batch else None,
        )
        stack.callback(bar.close)
        report = run(
            stage,
            _reader(paths, skip_bad_rows, input_format),
            sink,
            on_row=bar.update,
            say=_say(quiet),
        )
    if not quiet and report.summary:
        lines = [report.summary]
        if report.rows_unread or report.bad_rows:
            lines.append(report.accounting())
        click.echo("\n".join(lines), err=True)
    if report.error is not None:
        raise report.error


def _reader(paths: list[str], skip_bad_rows: bool, input_format: str | None) -> Read:
    """The rows of every input, in order, as the stage reads them."""

    def read(stage: Stage[Any], rejects: Rejects) -> Iterator[Any]:
        return itertools.chain.from_iterable(
            iter_rows(
                path,
                stage.read,
                skip_bad_rows=skip_bad_rows,
                rejects=rejects,
                fmt=input_format,
                fast=stage.read_fast,
            )
            for path in paths
        )

    return read


class FileSink(Sink):
    """Records to the output file (JSONL or Parquet), rows set aside to --rejects."""

    def __init__(self, writer: Writer | None, rejects: Rejects) -> None:
        super().__init__(rejects)
        self.writer = writer

    def keep(self, item: ToDict | Encoded) -> None:
        if self.writer is None:
            return
        if isinstance(item, Encoded):
            self.writer.write_line(item.text)
        else:
            self.writer.write(item.to_dict())

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()


def _dry_run(
    stage: EngineStage[Any], paths: list[str], skip_bad_rows: bool, input_format: str | None
) -> None:
    """What a run would send, on stdout (never to -o: it would lose its records); a dry run
    opens neither -o nor --rejects (it would empty a file it never writes)."""
    requests = RecordWriter("-", flush_each=False)
    try:
        rows = _reader(paths, skip_bad_rows, input_format)(stage, Rejects(None))
        click.echo(stage.dry_run(rows, requests.write), err=True)
    finally:
        requests.close()


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    return say


class Progress:
    """tqdm on stderr (silent when stderr is not a terminal, or with -q): rows done/total,
    and the engine's requests/s, tokens, cost and failures."""

    def __init__(
        self, quiet: bool, stage: Stage[Any], total: int | None, engine: Engine | None
    ) -> None:
        # disable=None: silent when stderr is not a terminal.
        self.bar = tqdm(
            desc="lemagen",
            unit=stage.unit,
            total=total,
            disable=True if quiet else None,
            file=sys.stderr,
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
        adapted = self.engine.adaptation()
        limited = f", {st.rate_limited} 429s ({adapted})" if st.rate_limited or adapted else ""
        self.bar.set_postfix_str(
            f"{rate:.1f} req/s{limited}, {st.prompt_tokens + st.completion_tokens} tok, "
            f"${st.cost:.4f}, {st.cached} cached, {st.failed} failed",
            refresh=False,
        )

    def close(self) -> None:
        if self.engine is not None and not self.bar.disable:
            self._postfix(time.monotonic())
        self.bar.close()
