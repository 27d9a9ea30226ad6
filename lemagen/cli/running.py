"""The one loop every command runs: build the stage, read rows into it, write what it keeps,
set aside what it sets aside, print its summary, exit with its status."""

from __future__ import annotations

import copy
import itertools
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from lemagen.engine import Engine, Stats
from lemagen.records.inputs import count_rows
from lemagen.records.jsonl import RecordWriter, optional_writer
from lemagen.records.parquet import Writer, is_parquet, open_output
from lemagen.records.rows import Encoded, Rejects, SetAside, iter_rows
from lemagen.stage.base import EngineStage, Hooks, Stage

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
    """Read every input (in `input_format`, None: by each name) through `stage`, write its
    records to `output` (None: nothing) and its set-aside rows to `rejects`, then print its
    summary on stderr and raise its exit."""
    paths = list(inputs)
    if not dry_run and isinstance(stage, EngineStage) and stage.config.batch is not None:
        _run_batched(stage, paths, output, rejects, skip_bad_rows, quiet, input_format)
        return
    rejected = _run_pass(stage, paths, output, rejects, skip_bad_rows, quiet, dry_run, input_format)
    if dry_run:
        return
    if not quiet:
        click.echo(stage.summary(rejected), err=True)
    stage.check_exit()


def _run_pass(
    stage: Stage[Any],
    paths: list[str],
    output: str | None,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    dry_run: bool = False,
    input_format: str | None = None,
) -> Rejects:
    with ExitStack() as stack:
        writer: Writer | None = None
        if output is not None and not dry_run:
            # Engine-driven stages flush whenever they would wait, not after every line.
            writer = open_output(output, flush_each=not isinstance(stage, EngineStage))
            stack.callback(writer.close)
        # A dry run opens neither -o nor --rejects: it would empty a file it never writes.
        rejected = Rejects(stack.enter_context(optional_writer(None if dry_run else rejects)))
        rows = itertools.chain.from_iterable(
            iter_rows(
                path,
                stage.read,
                skip_bad_rows=skip_bad_rows,
                rejects=rejected,
                fmt=input_format,
                fast=stage.read_fast,
            )
            for path in paths
        )
        if dry_run:  # the requests go to stdout, never to -o (it would lose its records)
            assert isinstance(stage, EngineStage)
            requests = RecordWriter("-", flush_each=False)
            stack.callback(requests.close)
            click.echo(stage.dry_run(rows, requests.write), err=True)
            return rejected
        if isinstance(stage, EngineStage):
            stage.keep_rows = True  # lines are written: kept rows can be written again
        stage.start(stack)
        total = count_rows(paths[0], input_format) if len(paths) == 1 else None
        bar = Progress(
            quiet, stage.unit, total, stage.engine if isinstance(stage, EngineStage) else None
        )
        stack.callback(bar.close)
        hooks = Hooks(
            on_wait=writer.flush if writer is not None else Hooks.on_wait, on_row=bar.update
        )
        for item in itertools.chain(stage.run(rows, hooks), stage.finish()):
            if isinstance(item, Encoded):  # a line encoded by the stage, or kept from a run
                if item.reason is not None:
                    rejected.add_line(item)
                elif writer is not None:
                    writer.write_line(item.text)
            elif isinstance(item, SetAside):
                rejected.add(item)
            elif writer is not None:
                writer.write(item.to_dict())
    return rejected


def _run_batched(
    stage: EngineStage[Any],
    paths: list[str],
    output: str | None,
    rejects: str | None,
    skip_bad_rows: bool,
    quiet: bool,
    input_format: str | None,
) -> None:
    """--batch: run the stage in passes over the input, each on a fresh copy of it, with its
    records held back in a temporary file. A pass collects the requests whose samples the
    store lacks (`lemagen.engine.batching`); they are submitted as batches and waited for
    (or the run exits, `BatchPending`), and the next pass finds them stored. The first pass
    that collects nothing wrote exactly what a synchronous run writes: its records go out."""
    from lemagen.engine.batches import BatchRunner, add_batch_usage  # only --batch needs it

    pristine = copy.deepcopy(stage)  # before anything started: each pass begins from it
    say = _say(quiet)
    with tempfile.TemporaryDirectory(prefix="lemagen-batch-") as tmp:
        held = Path(tmp)
        if "-" in paths:  # stdin is read by every pass
            spool = held / "stdin.jsonl"
            with open(spool, "wb") as handle:
                shutil.copyfileobj(sys.stdin.buffer, handle)
            paths = [str(spool) if p == "-" else p for p in paths]
        out = None if output is None else str(held / "out.jsonl")
        rej = None if rejects is None else str(held / "rejects.jsonl")
        runner = BatchRunner(stage.config, Stats(), say=say)
        try:
            while True:
                trial = copy.deepcopy(pristine)
                rejected = _run_pass(
                    trial, paths, out, rej, skip_bad_rows, quiet=True, input_format=input_format
                )
                collector = trial.engine.batch
                assert collector is not None
                try:
                    if not collector.requests and not collector.waiting:
                        break
                    runner.settle(collector)
                finally:
                    collector.close()
        finally:
            runner.close()
        add_batch_usage(trial.engine.stats, runner.stats)
        if out is not None:
            _deliver(out, output)
        if rej is not None:
            _deliver(rej, rejects, jsonl=True)
    if not quiet:
        click.echo(trial.summary(rejected), err=True)
    trial.check_exit()


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    return say


def _deliver(held: str, path: str | None, *, jsonl: bool = False) -> None:
    """The held lines to `path`: copied as they are to JSONL (rejects always are), decoded
    and written again to Parquet."""
    if jsonl or not is_parquet(path):
        writer = RecordWriter(path)
        try:
            with open(held, encoding="utf-8") as lines:
                for line in lines:
                    writer.write_line(line.rstrip("\n"))
        finally:
            writer.close()
        return
    parquet = open_output(path, flush_each=False)
    try:
        with open(held, "rb") as records:
            for record in records:
                parquet.write(json.loads(record))
    finally:
        parquet.close()


class Progress:
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
