"""Reading what ART's askers reply, as real models write it (a thinking block, chatter,
markdown, a JSON list or object instead of the numbered list asked for): `parse_sub_questions`
returns the sub-questions, or an `error` (a reason tag) with a `detail` saying why."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lemagen.lemma.replies import DECOR, answer_part, json_object
from lemagen.terms import Reason

_ITEM_LABEL = r"(?:sub-?questions?|q)[ \t]*\d+[ \t]*[:.)][ \t]*"
_ITEM = re.compile(  # a bullet (maybe with a label), a number or letter, or a label
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:[-*+\u2022][ \t]+(?:" + _ITEM_LABEL + r")?|\d+[.)][ \t]+|"
    r"\(?[a-z][.)][ \t]+|" + _ITEM_LABEL + r")(.+)$",
    re.IGNORECASE,
)


@dataclass
class ParsedQuestions:
    questions: list[str] = field(default_factory=list)
    error: Reason | None = None
    detail: str | None = None


def parse_sub_questions(reply: str) -> ParsedQuestions:
    text = answer_part(reply)
    stripped = text.lstrip()
    data: Any = None
    if stripped.startswith("["):
        try:
            data = json.loads(stripped[: stripped.rfind("]") + 1])
        except ValueError:
            data = None
    elif stripped.startswith("{"):
        obj = json_object(stripped)
        if isinstance(obj, dict):
            data = obj.get("sub_questions") or obj.get("questions")
    if data is not None:
        if isinstance(data, list) and data and all(isinstance(q, str) for q in data):
            return _questions([q.strip() for q in data])
        return ParsedQuestions(error="unparseable", detail="JSON without a list of questions")
    found = []
    for line in text.splitlines():
        item = _ITEM.match(DECOR.sub("", line))
        if item and "?" in item.group(1):
            question = item.group(1).strip()
            found.append(question[: question.rfind("?") + 1])
    return _questions(found)


def _questions(found: list[str]) -> ParsedQuestions:
    questions = [q for q in found if q.endswith("?") and len(q) > 3]
    if not questions:
        return ParsedQuestions(error="unparseable", detail="no sub-questions")
    return ParsedQuestions(list(dict.fromkeys(questions)))
