"""Reading what a server answered: the choices and token usage of a 200, the message of an
error body.

Nothing a server sends is trusted: a 200 whose body is not JSON, nests deeper than
`MAX_DEPTH` (looked at before decoding: a decoder recursing a thousand levels deep raises
`RecursionError`, or overflows a small thread stack), has no `choices` list, has a choice
without its text or with a text that is not a string is unreadable (the engine retries it,
then sets the call aside with the reason); token counts that are missing, negative or not
whole numbers are reported as unknown (the engine books them at its estimate, so a server
cannot make a run look cheaper than it is). Every text is redacted before anyone else sees
it, so a server that echoes the Authorization header puts the key in no record and no store
entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from lemagen.redact import redact


@dataclass(frozen=True)
class Reply:
    """A readable 200: the texts in index order, their finish reasons, and the token counts
    (None: absent or not a count)."""

    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens (already counted in them)


def read_choices(data: bytes, api: str) -> Reply | None:
    """The choices of a completion, or None when the body is not one."""
    read = read_reply(data, api)
    return read if isinstance(read, Reply) else None


# Arrays and objects in one another: a completion has 5 or 6; a decoder of this many levels
# stays far from the interpreter's recursion limit (1000) whatever calls it.
MAX_DEPTH = 512
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(data: bytes) -> bool:
    """Whether JSON `data` nests arrays and objects more than `MAX_DEPTH` levels deep
    (brackets inside strings do not count). An answer with fewer brackets than that in all
    (any completion but the longest) costs two counts; others, a pass over the text to take
    its strings out, and a loop over the brackets left when they are still that many."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    bare = data.replace(b"\\\\", b"").replace(b'\\"', b"")  # every quote left delimits a string
    structure = b"".join(bare.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    if structure.count(b"[") + structure.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for byte in structure:
        if byte in (91, 123):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


class _TooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def _loads(data: bytes) -> Any:
    """`data` as JSON; ValueError when it is not JSON or nests too deep."""
    if too_deep(data):
        raise _TooDeep
    try:
        return _decode(data)  # msgspec: several times cheaper than json.loads
    except msgspec.DecodeError:
        return json.loads(data)  # what msgspec refuses and json reads (NaN)


def read_reply(data: bytes, api: str) -> Reply | str:
    """The choices of a completion, or why the body is not one."""
    try:
        payload = _loads(data)
    except _TooDeep as exc:
        return str(exc)
    except ValueError:
        return "not JSON"
    if not isinstance(payload, dict):
        return "not a JSON object"
    raw = payload.get("choices")
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        return "no choices list"
    indices = [c.get("index", i) for i, c in enumerate(raw)]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raw = [c for _, c in sorted(zip(indices, raw, strict=True), key=lambda p: p[0])]
    texts: list[str] = []
    reasons: list[str | None] = []
    for choice in raw:
        if api == "chat":
            message = choice.get("message")
            if not isinstance(message, dict) or "content" not in message:
                return "a choice without message.content"
            text = _with_thinking(message, message["content"])
        else:
            if "text" not in choice:
                return "a choice without text"
            text = choice["text"]
        if text is None:
            text = ""  # a refusal or a tool call: no text
        if not isinstance(text, str):
            return "a choice's text is not a string"
        texts.append(redact(text))
        reason = choice.get("finish_reason")
        reasons.append(reason if isinstance(reason, str) else None)
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Reply(
        texts,
        reasons,
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
        _detail(prompt_details, "cached_tokens"),
        _detail(completion_details, "reasoning_tokens"),
    )


def _detail(details: Any, name: str) -> int:
    """`usage.*_tokens_details.<name>` (OpenAI's breakdown of a count), 0 when absent or not a
    count: a cached count not believed is priced as full input, never cheaper."""
    if not isinstance(details, dict):
        return 0
    return _count(details.get(name)) or 0


_decode = msgspec.json.Decoder().decode


def _with_thinking(message: dict[str, Any], content: Any) -> Any:
    """A chat choice's text. Thinking a server returns apart (`reasoning_content`: vLLM,
    SGLang, DeepSeek; `reasoning`: OpenRouter, Ollama) is put back before the answer as a
    `<think>` block, the form reasoning models write it in themselves, so one text holds all
    that was paid for and the stages read both forms the same way."""
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if (
        isinstance(thinking, str)
        and thinking.strip()
        and (content is None or isinstance(content, str))
    ):
        return f"<think>{thinking}</think>{content or ''}"
    return content


MAX_COUNT = 2**53  # no token count reaches it; SQLite's integers end at 2**63


def _count(value: Any) -> int | None:
    """A token count: a whole number from 0 to below `MAX_COUNT` (an integral float is
    taken), else None (2**63 or more would not fit the store, and no server means it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < MAX_COUNT else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < MAX_COUNT:
        return int(value)
    return None


# A count past these is not believed either (booked at the estimate, as a missing one): a
# prompt billed at over 100 times its estimate (the prompt's length / 4), completion tokens
# past 4 times what the request allowed (n x max_tokens). No server means those.
PROMPT_BELIEF = 100
COMPLETION_BELIEF = 4


def believed(
    prompt: int | None, completion: int | None, est_in: int, est_out: int
) -> tuple[int | None, int | None]:
    """A response's prompt and completion tokens, each None when past belief (see above)
    given the request's estimates: `est_in` prompt tokens, `est_out` completion tokens at
    most (n x max_tokens, or the default estimate)."""
    if prompt is not None and prompt > PROMPT_BELIEF * max(est_in, 1):
        prompt = None
    if completion is not None and completion > COMPLETION_BELIEF * max(est_out, 1):
        completion = None
    return prompt, completion


def error_message(data: bytes) -> str:
    """The `error.message` of a JSON error body, else the first line of the body; redacted."""
    return redact(_error_message(data))


def _error_message(data: bytes) -> str:
    try:
        body = _loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else "(empty body)"
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:1000]
        if isinstance(inner, str):
            return inner[:1000]
    return str(body)[:200]
