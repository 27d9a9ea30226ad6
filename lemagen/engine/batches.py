"""Provider Batch APIs (`--batch`, `lemagen batches`): submit the lines a pass collected,
follow the batches, and store their results under the keys a synchronous call would use.

Each remote step is recorded in the request store as soon as it returns (`batchstore`), so a
run stopped anywhere resumes with the same command: a job's file is uploaded once and its
batch created once. Batches go to the first --base-url (a batch belongs to the provider that
holds its file); a job is always followed at the base URL it was submitted to.

Results are booked at the batch price (`prices.Price.batch`); a line the batch did not answer
(an error line, or none at all after the batch failed, expired or was cancelled) counts as a
failure of its samples, which the next pass asks for again (`batching`).
"""

from __future__ import annotations

import functools
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lemagen.engine.batching import BatchCollector, BatchConfig, Collected
from lemagen.engine.batchstore import BatchLedger, BatchRequest, Job
from lemagen.engine.engine import RETRYABLE, Engine, EngineConfig, Stats, book
from lemagen.engine.prices import price_for
from lemagen.engine.responses import believed, error_message, read_choices, too_deep
from lemagen.engine.store import StoredSample
from lemagen.errors import BatchPending, EndpointError
from lemagen.redact import redact

FINISHED = frozenset({"completed", "expired", "cancelled", "failed"})
NOT_RUN = {
    "expired": "the batch expired before this request ran",
    "cancelled": "the batch was cancelled before this request ran",
    "completed": "the batch's output has no readable line for this request",
}


class BatchRunner:
    """Submits, follows and collects the jobs of one command; books their usage in `stats`."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        say: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert config.cache_dir is not None
        assert config.batch is not None
        self.config = config
        self.batch: BatchConfig = config.batch
        self.stats = Stats()  # what this run's batches returned, at the batch price
        self.ledger = BatchLedger(config.cache_dir)
        self.say = say
        self.sleep = sleep
        self._clients: dict[str, Any] = {}
        # --max-cost: the worst case of what this run submitted and has not collected yet;
        # once a batch did not fit, later passes submit nothing more (`prepare`).
        self.pending_cost = 0.0
        self.budget_stopped = False
        self.held_back = 0  # requests not submitted for the budget

    def prepare(self, engine: Engine) -> None:
        """Ready a pass's engine: what the budget has left is what it may spend synchronously
        (--batch-fallback sync), and after the budget stopped submissions, a request the
        store lacks is set aside as `budget_exhausted` instead of collected."""
        limit = self.config.max_cost
        if limit is not None:
            engine.budget.limit = max(0.0, limit - self.spent())
        assert engine.batch is not None
        if self.budget_stopped:
            engine.batch.refuse = engine.budget.refuse

    def spent(self) -> float:
        """What --max-cost counts in batch mode: collected, and the worst case of what was
        submitted and not collected yet."""
        return self.stats.cost + self.pending_cost

    def book(self, engine: Engine) -> None:
        """Book what this run's batches returned into the last pass's engine (its summary)."""
        engine.add_usage(self.stats)

    def close(self) -> None:
        self.ledger.close()
        for client in self._clients.values():
            client.close()

    def settle(self, collector: BatchCollector) -> None:
        """Submit the lines a pass collected that no open job asks for, then follow every job
        asking for any of them (and those the pass waits for) until all are collected
        (--wait), or raise `BatchPending` while some still run."""
        requests = collector.requests
        jobs = set(collector.waiting)
        with self.ledger.locked():  # another run on this store does not submit them too
            holding = self.ledger.open_custom_ids()
            keys = [k for r in requests.values() for k in r.keys]
            held = self.ledger.open_keys(keys)
            new: list[Collected] = []
            for cid, request in requests.items():
                owners = {held[k] for k in request.keys if k in held}
                if cid in holding:
                    owners.add(holding[cid])
                if owners:  # a batch asks for these already: wait for it
                    jobs |= owners
                else:
                    new.append(request)
            new = self._affordable(collector, new)
            files = 0
            base_url = public_url(self.config.base_urls[0])
            for group in split(new, self.batch.max_requests, self.batch.max_bytes):
                files += 1
                job = uuid.uuid4().hex
                lines = [collector.request(c) for c in group]
                self.ledger.prepare(job, base_url, group[0].endpoint, group[0].model, lines)
                jobs.add(job)
        if new:
            self.say(
                f"{len(new)} requests the request store lacks go into {files} new batch "
                "input file(s)"
            )
        while True:
            with self.ledger.locked():  # one run at a time takes a job's steps
                running = [j for j in map(self.ledger.job, sorted(jobs)) if not self.advance(j)]
                running = [self.ledger.job(j.job) for j in running]
            if not running:
                return
            for still in running:
                self.say(progress(still))
            if not self.batch.wait:
                ids = ", ".join(j.batch_id or j.job for j in running)
                total = sum(j.counts.get("total", 0) for j in running)
                raise BatchPending(
                    f"{len(running)} batch(es) still running ({ids}; {total} requests): "
                    "re-run the same command to collect the results (or add --wait)"
                )
            self.sleep(self.batch.poll_interval)

    def _affordable(self, collector: BatchCollector, new: list[Collected]) -> list[Collected]:
        """The requests whose worst case (at the batch price) fits --max-cost beside what was
        spent and submitted, in order; the rest are held back and the budget stops."""
        limit = self.config.max_cost
        if limit is None:
            return new
        cfg = self.config
        fits = []
        for request in new:
            price = price_for(request.model, cfg.price_in, cfg.price_out, cfg.price_cached)
            worst = price.batch().cost(*worst_tokens(collector.request(request).line))
            if self.spent() + worst > limit:
                self.budget_stopped = True
                self.held_back += 1
                continue
            self.pending_cost += worst
            fits.append(request)
        if self.budget_stopped:
            self.say(
                f"--max-cost ${limit:g}: {self.held_back} requests not submitted (spent and "
                f"submitted ${self.spent():.4f}, at worst)"
            )
        return fits

    # ------------------------------------------------------------------ one job

    def advance(self, job: Job) -> bool:
        """Take `job` one step as far as it goes now; True once it is collected."""
        if job.collected is not None:
            return True
        client = self.client(job.base_url)
        if job.file_id is None:
            name = f"lemagen-{job.job}.jsonl"
            # "uploading": an earlier run may have uploaded it and stopped before the answer
            found = _find_file(client, job.base_url, name) if job.status == "uploading" else None
            if found is None:
                self.ledger.mark(job.job, "uploading")
                content = "".join(r.line + "\n" for r in self.ledger.requests(job.job))
                found = _object(
                    job.base_url,
                    "file",
                    lambda: client.files.create(file=(name, content.encode()), purpose="batch"),
                ).id
            self.ledger.uploaded(job.job, found)
            job = self.ledger.job(job.job)
        if job.batch_id is None:
            file_id = job.file_id
            assert file_id is not None
            batch = None
            if job.status == "submitting":  # an earlier run may have created it
                batch = _find_batch(client, job.base_url, file_id)
            if batch is None:
                self.ledger.mark(job.job, "submitting")
                batch = _object(
                    job.base_url,
                    "batch",
                    lambda: client.batches.create(
                        input_file_id=file_id,
                        endpoint=job.endpoint,
                        completion_window=self.batch.completion_window,
                        metadata={"lemagen_job": job.job},
                    ),
                )
            self.ledger.submitted(job.job, batch.id, batch.status)
            job = self.ledger.job(job.job)
        assert job.batch_id is not None
        batch = _object(job.base_url, "batch", lambda: client.batches.retrieve(job.batch_id))
        self.ledger.seen(job.job, batch.status, _counts(batch))
        if batch.status not in FINISHED:
            return False
        self.collect(job, batch)
        return True

    def collect(self, job: Job, batch: Any) -> None:
        """Download a finished batch's output and error files and store every result (one
        transaction), booking its usage at the batch price."""
        client = self.client(job.base_url)
        lines: dict[str, dict[str, Any]] = {}
        unreadable = 0  # lines that are no JSON object with a custom_id: their requests failed
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                text = str(_call(job.base_url, functools.partial(_content, client, file_id)))
                for raw in text.splitlines():
                    if raw.strip():
                        line = _output_line(raw)
                        if line is None:
                            unreadable += 1
                        else:
                            lines[line["custom_id"]] = line
        api = "chat" if job.endpoint.endswith("/chat/completions") else "completion"
        cfg = self.config
        price = price_for(job.model, cfg.price_in, cfg.price_out, cfg.price_cached).batch()
        samples: list[tuple[bytes, StoredSample]] = []
        failed: list[tuple[bytes, str]] = []
        final: list[tuple[bytes, str]] = []  # a 4xx answer: asking again cannot help
        booked: list[StoredSample] = []  # one per line answered: its usage
        for request in self.ledger.requests(job.job):
            line = lines.get(request.custom_id)
            if line is None:
                reason = NOT_RUN.get(batch.status) or f"the batch failed: {_errors(batch)}"
                failed.extend((key, reason) for key in request.keys)
                continue
            request_id = f"{batch.id}:{request.custom_id}"
            got, error, estimated = _read_line(line, api, request, request_id)
            samples.extend(zip(request.keys, got, strict=False))
            into = final if _refused(line) else failed
            into.extend((key, error) for key in request.keys[len(got) :])
            if got:
                booked.append(got[0])
                self.stats.usage_estimated += estimated
        self.ledger.collect(job.job, batch.status, samples, failed, final)
        for usage in booked:
            cost = book(self.stats, job.model, price, usage)
            self.stats.batch_requests += 1
            self.stats.batch_cost += cost
        if self.config.max_cost is not None:  # its worst case is spent or released now
            for request in self.ledger.requests(job.job):
                worst = price.cost(*worst_tokens(request.line))
                self.pending_cost = max(0.0, self.pending_cost - worst)
        self.say(
            f"batch {batch.id}: {batch.status}; stored {len(samples)} samples, "
            f"{len(failed)} not returned"
            + (f" ({unreadable} output lines unreadable)" if unreadable else "")
        )

    def refresh(self, job: Job) -> None:
        """Record a submitted job's current status and counts (nothing is collected)."""
        if job.batch_id is None or job.collected is not None or job.status in FINISHED:
            return
        client = self.client(job.base_url)
        batch = _object(job.base_url, "batch", lambda: client.batches.retrieve(job.batch_id))
        self.ledger.seen(job.job, batch.status, _counts(batch))

    def cancel(self, job: Job) -> str:
        """Ask the provider to cancel a submitted job's batch; its status after asking."""
        client = self.client(job.base_url)
        batch = _object(job.base_url, "batch", lambda: client.batches.cancel(job.batch_id))
        self.ledger.seen(job.job, batch.status, _counts(batch))
        return str(batch.status)

    def client(self, base_url: str) -> Any:
        """A client for a job's (stored) base URL: the given --base-url it stands for, with the
        user:password the store never holds, when there is one."""
        client = self._clients.get(base_url)
        if client is None:
            import openai

            given = [u for u in self.config.base_urls if public_url(u) == base_url]

            client = openai.OpenAI(
                base_url=given[0] if given else base_url,
                api_key=self.config.api_key or "EMPTY",
                timeout=self.config.timeout,
                max_retries=self.config.max_retries,
            )
            self._clients[base_url] = client
        return client


def public_url(url: str) -> str:
    """`url` without a user:password part (it would be a credential in the store)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def worst_tokens(line: str) -> tuple[int, int]:
    """A Batch input line's worst case: its prompt (estimated as a synchronous call's is),
    and every token it may produce."""
    body = json.loads(line)["body"]
    text = body.get("prompt") or "".join(str(m.get("content")) for m in body.get("messages", ()))
    most = body.get("max_tokens") or body.get("max_completion_tokens") or 1024
    return len(str(text)) // 4 + 8, int(most) * int(body.get("n", 1))


def _refused(line: dict[str, Any]) -> bool:
    """A line the provider answered with a 4xx other than 408, 409, 425 and 429: the request
    itself is wrong, so a new batch would be refused again (and billed nothing, but cost up
    to a completion window of waiting each time)."""
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    return isinstance(status, int) and 400 <= status < 500 and status not in RETRYABLE


def split(
    requests: Sequence[Collected], max_requests: int, max_bytes: int
) -> Iterator[list[Collected]]:
    """Input files: one model each, at most `max_requests` lines and `max_bytes` bytes."""
    by_model: dict[str, list[Collected]] = {}
    for request in requests:
        by_model.setdefault(request.model, []).append(request)
    for group in by_model.values():
        chunk: list[Collected] = []
        size = 0
        for request in group:
            if chunk and (len(chunk) >= max_requests or size + request.size > max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(request)
            size += request.size
        if chunk:
            yield chunk


def _output_line(raw: str) -> dict[str, Any] | None:
    """A line of a batch's output or error file, or None when it is not a JSON object with a
    text custom_id, or nests deeper than `responses.MAX_DEPTH` (its request then has no line,
    and fails)."""
    if too_deep(raw.encode("utf-8", "surrogatepass")):
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None
    return line


def _read_line(
    line: dict[str, Any], api: str, request: BatchRequest, request_id: str
) -> tuple[list[StoredSample], str, bool]:
    """One output or error line: its samples (each carrying the line's usage, as samples of
    one synchronous request do), the reason for those it lacks, and whether its usage was
    booked at the estimate."""
    response = line.get("response") or {}
    error = line.get("error")
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    if status != 200 or not isinstance(body, dict):
        if isinstance(error, dict) and error.get("message"):
            return [], f"batch line error: {error.get('code')}: {error['message']}", False
        detail = error_message(json.dumps(body).encode()) if body is not None else "no response"
        return [], f"batch line error: HTTP {status}: {detail}", False
    read = read_choices(json.dumps(body).encode(), api)
    if read is None:
        return [], "unreadable response in the batch output", False
    est_in, est_out = worst_tokens(request.line)  # booked at the estimate, as a sync call's
    # Missing counts, or counts past belief, are booked at the estimate.
    prompt, completion = believed(read.prompt_tokens, read.completion_tokens, est_in, est_out)
    estimated = prompt is None or completion is None
    prompt = est_in if prompt is None else prompt
    completion = est_out if completion is None else completion
    cached = min(read.cached_tokens, prompt)
    reasoning = min(read.reasoning_tokens, completion)
    per = [
        StoredSample(text, reason, request_id, prompt, completion, cached, reasoning)
        for text, reason in zip(read.texts, read.finish_reasons, strict=True)
    ]
    return per, f"the batch returned {len(per)} of {len(request.keys)} samples", estimated


LOOK_BACK = 1000  # files or batches listed (newest first) when looking for one of ours


def _find_file(client: Any, base_url: str, name: str) -> str | None:
    """The id of an input file an earlier run uploaded under `name`, if any. A provider that
    cannot list files gets the file again (a second copy costs nothing; a second batch
    would, so `_find_batch` has no such way out)."""
    try:
        files = _call(base_url, lambda: list(itertools.islice(client.files.list(), LOOK_BACK)))
    except EndpointError:
        return None
    for found in files:
        if found.filename == name and found.purpose == "batch":
            return str(found.id)
    return None


def _find_batch(client: Any, base_url: str, file_id: str) -> Any:
    """A batch an earlier run created for `file_id`, if any."""
    batches = _call(base_url, lambda: list(itertools.islice(client.batches.list(), LOOK_BACK)))
    for found in batches:
        if found.input_file_id == file_id:
            return found
    return None


def _content(client: Any, file_id: str) -> str:
    return str(client.files.content(file_id).text)


def _counts(batch: Any) -> dict[str, int]:
    counts: Any = getattr(batch, "request_counts", None)
    if hasattr(counts, "model_dump"):
        counts = counts.model_dump()
    if not isinstance(counts, dict):
        return {}
    return {k: v for k, v in counts.items() if isinstance(v, int) and 0 <= v < 2**53}


def _errors(batch: Any) -> str:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return "; ".join(str(getattr(e, "message", e)) for e in data) or batch.status


def progress(job: Job) -> str:
    counts = job.counts
    return (
        f"batch {job.batch_id or '(not submitted)'} ({job.model}): {job.status}, "
        f"{counts.get('completed', 0)}/{counts.get('total', 0)} done, "
        f"{counts.get('failed', 0)} failed"
    )


_FIELDS = {"file": ("id",), "batch": ("id", "status")}


def _object(base_url: str, kind: str, do: Callable[[], Any]) -> Any:
    """`_call` for an answer that must be a file or batch object: one without its id (or a
    batch without its status) is an endpoint error, not a row in the store."""
    answer = _call(base_url, do)
    for name in _FIELDS[kind]:
        value = getattr(answer, name, None)
        if not isinstance(value, str) or not value:
            shown = redact(repr(answer))[:200]
            raise EndpointError(
                f"batch API at {base_url}: the answer is not a {kind} object (no {name}): {shown}"
            )
    return answer


def _call(base_url: str, do: Callable[[], Any]) -> Any:
    """One Files or Batches API call; what the SDK's retries could not fix stops the run
    (re-running resumes where it stopped)."""
    import openai

    try:
        return do()
    except openai.APIStatusError as exc:
        raise EndpointError(
            f"batch API at {base_url}: HTTP {exc.status_code}: "
            f"{error_message(exc.response.content)}"
        ) from None
    except openai.APIError as exc:
        raise EndpointError(f"batch API at {base_url}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a 200 whose body is not JSON
        raise EndpointError(f"batch API at {base_url}: the answer is not JSON: {exc}") from None


def describe_jobs(ledger: BatchLedger) -> Iterator[dict[str, Any]]:
    """The jobs the store knows about, as `lemagen batches` lists them."""
    for job in ledger.jobs():
        yield {
            "batch_id": job.batch_id,
            "status": job.status,
            "request_counts": job.counts,
            "created": int(job.created),
            "endpoint": job.endpoint,
            "model": job.model,
            "base_url": job.base_url,
            "file_id": job.file_id,
            "job": job.job,
            "collected": job.collected is not None,
        }
