"""A coder's reply read as a program, and a program's output read as an answer."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)```", re.S | re.I)


def extract_program(reply: str) -> str | None:
    """The last ```python block of `reply` (or a bare ``` block), or the whole reply when it
    has no block and looks like a program (it prints); None when there is no program."""
    blocks: list[str] = [b.strip() for b in _FENCE.findall(reply) if b.strip()]
    if blocks:
        return blocks[-1] + "\n"
    text = reply.strip()
    if "```" not in text and "print(" in text:
        return text + "\n"
    return None


def printed_answer(stdout: str) -> str | None:
    """The program's answer: its last non-empty line, without `$...$` or a final full stop."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    answer = lines[-1]
    if len(answer) > 1 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    if answer.endswith(".") and not answer.endswith(".."):
        answer = answer[:-1].rstrip()
    return answer or None
