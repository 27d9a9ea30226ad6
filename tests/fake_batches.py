"""The Files and Batches endpoints of the loopback server (`tests.fake_openai.FakeOpenAI`),
shaped as OpenAI's: upload (multipart, purpose "batch"), file content, delete; create,
retrieve, list and cancel batches.

A batch's status moves only when the test moves it (`step`, `finish`, `expire`), or, with
`auto`, one step at each retrieve (validating -> in_progress -> finalizing -> completed), so
no test depends on timing. Its lines are answered by the server's own responder (`reply`), so
a batch's results are exactly what synchronous requests get; `line_error` turns chosen lines
into per-line errors in the error file, `damage` rewrites an answered line as it goes into the
output file (not JSON, cut short, other usage: the provider billed it all the same), and
`create_answer` replaces the answer to creating a batch (then no batch is made). `paid` counts
every line answered with a 200, by custom_id and by request (`request_key`), so tests can
assert nothing is paid twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_openai import FakeOpenAI, request_key

STEPS = ("validating", "in_progress", "finalizing", "completed")
LineError = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]] | None]


@dataclass
class FakeBatches:
    server: FakeOpenAI
    auto: bool = False  # each retrieve moves a batch one step on
    line_error: LineError | None = None  # (custom_id, body) -> (status, error body) or None
    damage: Callable[[str, str], str] | None = None  # (custom_id, output line) -> what is written
    create_answer: Any = None  # when set: the answer to a create (as JSON, or raw bytes)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> file object
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: int = 0
    creates: int = 0
    downloads: int = 0
    retrieves: int = 0
    paid: Counter[str] = field(default_factory=Counter)  # custom_id and request_key -> 200s
    submitted: Counter[str] = field(default_factory=Counter)  # custom_id -> batches created
    fail_next: Counter[str] = field(default_factory=Counter)  # "upload"/"create"/"content": 500s
    # "upload"/"create": the answer is held back until the event is set (done meanwhile)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    arrived: dict[str, threading.Event] = field(default_factory=dict)
    refuse_next: str | None = None  # the next batch fails validation with this message
    hold_before: dict[str, threading.Event] = field(default_factory=dict)  # held, not yet done
    arrivals: Counter[str] = field(default_factory=Counter)  # requests seen, by operation
    _done: dict[str, dict[str, str]] = field(default_factory=dict)  # batch -> custom_id -> line
    _errors: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _count: int = 0

    @classmethod
    def on(cls, server: FakeOpenAI, **kw: Any) -> FakeBatches:
        batches = cls(server, **kw)
        server.batches = batches
        return batches

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count:04d}"

    # ------------------------------------------------------------------ HTTP

    def handle(self, method: str, url: str, headers: Any, raw: bytes) -> tuple[int, bytes]:
        before = _operation(method, urlsplit(url).path.removeprefix("/v1/").split("/"))
        with self._lock:
            self.arrivals[before] += 1
        waiting = self.hold_before.get(before)
        if waiting is not None:  # not done yet: the request waits before anything happens
            waiting.wait(60)
        with self._lock:
            status, payload = self._route(method, url, headers, raw)
        operation = _operation(method, urlsplit(url).path.removeprefix("/v1/").split("/"))
        held = self.hold.get(operation)
        if held is not None:  # done, but the answer waits (the client may be killed meanwhile)
            self.arrived.setdefault(operation, threading.Event()).set()
            held.wait(60)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, data

    def _route(self, method: str, url: str, headers: Any, raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(url)
        path = parts.path.removeprefix("/v1/").strip("/").split("/")
        operation = _operation(method, path)
        if self.fail_next[operation] > 0:
            self.fail_next[operation] -= 1
            return 500, {"error": {"message": f"injected 500 on {operation}", "code": "x"}}
        if path == ["files"] and method == "POST":
            return self._upload(headers.get("Content-Type", ""), raw)
        if path == ["files"] and method == "GET":
            data = sorted(self.files.values(), key=lambda f: f["id"], reverse=True)
            return 200, {"object": "list", "data": data, "has_more": False}
        if path[0] == "files" and len(path) >= 2 and path[1] in self.files:
            if len(path) == 3 and path[2] == "content" and method == "GET":
                self.downloads += 1
                return 200, self.contents[path[1]]
            if len(path) == 2 and method == "DELETE":
                del self.files[path[1]]
                return 200, {"id": path[1], "object": "file", "deleted": True}
            if len(path) == 2 and method == "GET":
                return 200, self.files[path[1]]
        if path == ["batches"] and method == "POST":
            if self.create_answer is not None:
                return 200, self.create_answer
            return self._create(json.loads(raw))
        if path == ["batches"] and method == "GET":
            limit = int(parse_qs(parts.query).get("limit", ["20"])[0])
            data = sorted(self.batches.values(), key=lambda b: -int(b["created_at"]))[:limit]
            return 200, {"object": "list", "data": data, "has_more": False}
        if path[0] == "batches" and len(path) >= 2 and path[1] in self.batches:
            batch = self.batches[path[1]]
            if len(path) == 2 and method == "GET":
                self.retrieves += 1
                if batch["status"] == "cancelling":
                    self._close(batch, "cancelled")
                elif self.auto and batch["status"] in STEPS[:-1]:
                    self.step(batch["id"])
                return 200, batch
            if len(path) == 3 and path[2] == "cancel" and method == "POST":
                if batch["status"] in ("validating", "in_progress", "finalizing"):
                    batch["status"] = "cancelling"
                    batch["cancelling_at"] = int(time.time())
                return 200, batch
        return 404, {"error": {"message": f"no route {method} {url}", "code": "not_found"}}

    def _upload(self, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        filename = None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                filename = part.get_filename()
            fields[str(name)] = part.get_payload(decode=True)
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return 400, {"error": {"message": "need file and purpose=batch", "code": "invalid"}}
        self.uploads += 1
        return 200, self._file(str(filename), "batch", fields["file"])

    def _file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        file_id = self._id("file")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.contents[file_id] = content
        return self.files[file_id]

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return 400, {"error": {"message": f"no file {file_id}", "code": "invalid"}}
        self.creates += 1
        batch_id = self._id("batch")
        batch: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "errors": None,
            "input_file_id": file_id,
            "completion_window": body.get("completion_window"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()) * 1000 + self._count,  # ordered, unique
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch_id] = batch
        self._done[batch_id] = {}
        self._errors[batch_id] = []
        lines = [json.loads(x) for x in self.contents[file_id].decode().splitlines() if x]
        ids = [line.get("custom_id") for line in lines]
        problems = [
            f"line {i}: {what}"
            for i, line in enumerate(lines, 1)
            for what, bad in (
                ("method must be POST", line.get("method") != "POST"),
                ("url must be the batch's endpoint", line.get("url") != body.get("endpoint")),
                ("no body", not isinstance(line.get("body"), dict)),
            )
            if bad
        ]
        if len(set(ids)) != len(ids):
            problems.append("custom_id values must be unique")
        if self.refuse_next is not None:
            problems.append(self.refuse_next)
            self.refuse_next = None
        if problems:
            batch["errors"] = {
                "object": "list",
                "data": [{"code": "invalid_request", "message": p} for p in problems],
            }
            batch["status"] = "failed"
        else:
            for cid in ids:
                self.submitted[str(cid)] += 1
        batch["request_counts"]["total"] = len(lines)
        return 200, batch

    # ------------------------------------------------------------------ driving

    def files_sent(self) -> list[str]:
        """The ids of the input files uploaded, in order."""
        return [f for f, obj in self.files.items() if obj["purpose"] == "batch"]

    def latest(self) -> str:
        return max(self.batches, key=lambda b: int(self.batches[b]["created_at"]))

    def step(self, batch_id: str | None = None) -> str:
        """Move a batch one status on; its lines are answered on the way to finalizing."""
        with self._lock:
            batch = self.batches[batch_id or self.latest()]
            status = batch["status"]
            assert status in STEPS[:-1], status
            nxt = STEPS[STEPS.index(status) + 1]
            if nxt == "finalizing":
                self._run(batch, None)
            if nxt == "completed":
                self._close(batch, "completed")
            else:
                batch["status"] = nxt
            return str(nxt)

    def finish(self, batch_id: str | None = None) -> None:
        """Run a batch through to completed."""
        with self._lock:
            target = batch_id or self.latest()
            while self.batches[target]["status"] != "completed":
                self.step(target)

    def expire(self, batch_id: str | None = None, *, run: int = 0) -> None:
        """The completion window passes after `run` lines were answered: the rest go to the
        error file as batch_expired."""
        with self._lock:
            batch = self.batches[batch_id or self.latest()]
            self._run(batch, run)
            for line in self._lines(batch):
                if line["custom_id"] not in self._done[batch["id"]]:
                    self._errors[batch["id"]].append(
                        json.dumps(
                            {
                                "id": self._id("batch_req"),
                                "custom_id": line["custom_id"],
                                "response": None,
                                "error": {
                                    "code": "batch_expired",
                                    "message": "This request could not be executed before "
                                    "the completion window expired.",
                                },
                            }
                        )
                    )
            self._close(batch, "expired")

    def _lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        text = self.contents[batch["input_file_id"]].decode()
        return [json.loads(x) for x in text.splitlines() if x]

    def _run(self, batch: dict[str, Any], limit: int | None) -> None:
        done, errors = self._done[batch["id"]], self._errors[batch["id"]]
        for line in self._lines(batch)[:limit]:
            cid, body = line["custom_id"], line["body"]
            if cid in done:
                continue
            failure = self.line_error(cid, body) if self.line_error else None
            if failure is None:
                path = line["url"].removeprefix("/v1")
                status, payload, _ = self.server.reply(path, body, None)
            else:
                status, payload = failure
            out = {
                "id": self._id("batch_req"),
                "custom_id": cid,
                "response": {"status_code": status, "request_id": cid, "body": payload},
                "error": None,
            }
            done[cid] = json.dumps(out)
            if status == 200 and self.damage is not None:
                done[cid] = self.damage(cid, done[cid])
            counts = batch["request_counts"]
            if status == 200:
                self.paid[cid] += 1
                self.paid[request_key(body)] += 1
                counts["completed"] += 1
            else:
                errors.append(done.pop(cid))
                done[cid] = ""
                counts["failed"] += 1

    def _close(self, batch: dict[str, Any], status: str) -> None:
        done = [x for x in self._done[batch["id"]].values() if x]
        if done:
            content = "".join(x + "\n" for x in done).encode("utf-8", "surrogateescape")
            batch["output_file_id"] = self._file("output.jsonl", "batch_output", content)["id"]
        if self._errors[batch["id"]]:
            content = "".join(x + "\n" for x in self._errors[batch["id"]]).encode()
            batch["error_file_id"] = self._file("errors.jsonl", "batch_output", content)["id"]
        batch["status"] = status
        batch[f"{status}_at"] = int(time.time())


def _operation(method: str, path: list[str]) -> str:
    if path == ["files"] and method == "POST":
        return "upload"
    if path == ["batches"] and method == "POST":
        return "create"
    if path[-1] == "content":
        return "content"
    if path == ["files"] and method == "GET":
        return "list-files"
    return ""
