"""Reasoning models think before they answer: split a reply into its thinking and its answer.

DeepSeek-R1 and its distills, Qwen3 in thinking mode and QwQ write `<think>...</think>` before
the answer; some chat templates open the block themselves, so the reply holds only the closing
tag; servers that return the thinking apart have it put back in this form by the engine. The
answer part is what gets graded, split into steps and trained on; the thinking is kept beside
it. A block that never closes holds no answer (cut at the token limit, it is `truncated`).
"""

from __future__ import annotations

import re

import msgspec

_OPEN = re.compile(r"^\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)


class Thought(msgspec.Struct, frozen=True):
    thinking: str | None  # None: the reply did not think aloud
    answer: str
    closed: bool = True  # False: the thinking never ended, so there is no answer part


def split_thinking(text: str) -> Thought:
    closes = list(_CLOSE.finditer(text))
    if closes:
        last = closes[-1]
        thinking = _OPEN.sub("", text[: last.start()], count=1).strip()
        return Thought(thinking, text[last.end() :].lstrip())
    opened = _OPEN.match(text)
    if opened:
        return Thought(text[opened.end() :].strip(), "", closed=False)
    return Thought(None, text)
