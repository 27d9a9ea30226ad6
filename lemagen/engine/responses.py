"""Reading what a server answered: the choices and token usage of a 200, the message of an
error body."""

from __future__ import annotations

import json
from typing import Any


def read_choices(data: bytes, api: str) -> tuple[list[dict[str, Any]], list[str], int, int] | None:
    """The raw choices in index order, their texts, and the prompt and completion tokens;
    None when the body is not a completion."""
    try:
        payload = json.loads(data)
        raw = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        texts = [
            (c["message"]["content"] or "") if api == "chat" else (c["text"] or "") for c in raw
        ]
        usage = payload.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return raw, texts, prompt, completion


def error_message(data: bytes) -> str:
    """The `error.message` of a JSON error body, else the first line of the body."""
    try:
        body = json.loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else "(empty body)"
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(body)[:200]
