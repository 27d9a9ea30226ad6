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
        texts = [_text(c["message"]) if api == "chat" else (c["text"] or "") for c in raw]
        usage = payload.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return raw, texts, prompt, completion


def _text(message: dict[str, Any]) -> str:
    """A chat choice's text. Thinking a server returns apart (`reasoning_content`: vLLM,
    SGLang, DeepSeek; `reasoning`: OpenRouter, Ollama) is put back before the answer as a
    `<think>` block, the form reasoning models write it in themselves, so one text holds all
    that was paid for and the stages read both forms the same way."""
    content = message["content"] or ""
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking.strip():
        return f"<think>{thinking}</think>{content}"
    return str(content)


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
