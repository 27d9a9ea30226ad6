"""Reading what analysers and teachers reply, as real models write it: a thinking
block first, a chatty preamble, markdown (bold labels, headings, bullets, code fences), a JSON
object instead of the labelled text the prompt asks for, chatter after the answer.

- `parse_analysis`: the first erroneous step and the error type (LEMMA's taxonomy, by its
  identifier, the paper's name or two-letter code, or the LEMMA repository's identifier).
- `parse_injection`: a teacher's solution with one mistake put in, and its explanation.

Each returns what it read or an `error` (a reason tag) with a `detail` saying why. ART's
askers' replies are read in `lemagen.art.replies`, with the helpers here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lemagen.math.thinking import split_thinking
from lemagen.records import TAXONOMY
from lemagen.terms import Reason

_FENCE = re.compile(r"(?m)^[ \t]*(?:```|~~~)[\w+.-]*[ \t]*$\n?")
DECOR = re.compile(r"\*\*|__|`")
_LEAD = r"^[ \t]*(?:#{1,6}[ \t]*)?(?:[-*+][ \t]+)?"  # a heading mark or a bullet
_STEP_LABEL = re.compile(
    _LEAD + r"(?:the[ \t]+)?(?:first[ \t]+)?(?:wrong|erroneous|incorrect|error|mistaken)?[ \t]*"
    r"step(?:[ \t]+number)?[ \t]*[:=\-\u2013][ \t]*(?:step[ \t]*)?#?(\d{1,9})(?!\d)",
    re.IGNORECASE | re.MULTILINE,
)
_STEP_PROSE = re.compile(
    # "the first wrong step is step 3", "the first error occurs in Step 3",
    # "Step 3 is the first incorrect step"
    r"first[ \t]+(?:wrong|erroneous|incorrect|error(?:oneous)?|mistaken)[ \t]+step[ \t]+"
    r"(?:is|arises[ \t]+(?:at|in)|occurs[ \t]+(?:at|in)|was)[ \t]+(?:in[ \t]+|at[ \t]+)?"
    r"(?:step[ \t]*)?(\d{1,9})(?!\d)"
    r"|first[ \t]+(?:error|mistake)[ \t]+(?:is|occurs|appears|arises|happens)[ \t]+"
    r"(?:in|at)[ \t]+step[ \t]*(\d{1,9})(?!\d)"
    r"|step[ \t]*(\d{1,9})[ \t]+is[ \t]+the[ \t]+first[ \t]+(?:wrong|erroneous|incorrect|mistaken)",
    re.IGNORECASE,
)
_TYPE_LABEL = re.compile(
    _LEAD
    + r"(?:the[ \t]+)?(?:error|wrong|mistake)[ \t]+(?:type|category)[ \t]*[:=\-\u2013][ \t]*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_TYPE_PROSE = re.compile(
    r"(?:wrong|error)[ \t]+type[ \t]+is[ \t]+(.+?)(?:\.(?:\s|$)|$)", re.I | re.M
)
_EXPLANATION = re.compile(
    _LEAD + r"(?:explanation|reason|why)[ \t]*[:=\-\u2013][ \t]*(.*)$", re.IGNORECASE | re.MULTILINE
)
_SAYS_CORRECT = re.compile(
    r"\b(?:the[ \t]+)?(?:solution|answer|reasoning)[ \t]+is[ \t]+(?:entirely[ \t]+|fully[ \t]+"
    r"|completely[ \t]+)?correct\b|\bno[ \t]+(?:errors?|mistakes?)[ \t]+(?:found|in)\b",
    re.IGNORECASE,
)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


_NAMES: dict[str, str] = {}
for _t in TAXONOMY:
    for _name in (_t.id, _t.name, *_t.aliases):
        _NAMES[_key(_name)] = _t.id
_CODES = {t.code: t.id for t in TAXONOMY}
_ANY_NAME = re.compile(  # in `_key_text`, where `_` separates words
    r"(?<![a-z0-9])("
    + "|".join(sorted((re.escape(k) for k in _NAMES), key=len, reverse=True))
    + r")(?![a-z0-9])"
)


def error_type_of(value: str) -> str | None:
    """The taxonomy identifier `value` names (an identifier, a paper name, a code such as
    `CA`, a repository identifier, `Calculation Error (CA)`), or None."""
    text = DECOR.sub("", value).strip()
    code = re.search(r"\(([A-Z]{2})\)", text)
    text = re.sub(r"\([^)]*\)", "", text).strip().strip("\"'<>[]().,;:").strip()
    key = _key(text)
    if key in _NAMES:
        return _NAMES[key]
    if f"{key}_error" in _NAMES:
        return _NAMES[f"{key}_error"]
    if text.upper() in _CODES and len(text) == 2:
        return _CODES[text.upper()]
    if code and code.group(1) in _CODES:
        return _CODES[code.group(1)]
    return None


def answer_part(reply: str) -> str:
    """The reply after any thinking, without code fences."""
    return _FENCE.sub("", split_thinking(reply).answer).strip()


def json_object(text: str) -> Any:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        found = re.search(r"(?<!\d)\d{1,9}(?!\d)", value)
        return int(found.group()) if found else None
    return None


# ---------------------------------------------------------------- analysis


@dataclass
class ParsedAnalysis:
    step: int | None = None
    error_type: str | None = None
    explanation: str | None = None
    error: Reason | None = None  # unparseable, unknown_error_type, says_correct
    detail: str | None = None


def parse_analysis(reply: str) -> ParsedAnalysis:
    text = answer_part(reply)
    data = json_object(text)
    if isinstance(data, dict):
        return _analysis_from_json(data)
    plain = DECOR.sub("", text)
    out = ParsedAnalysis()
    found = _STEP_LABEL.search(plain) or _STEP_PROSE.search(plain)
    if found:
        out.step = int(next(g for g in found.groups() if g is not None))
    named = _TYPE_LABEL.search(plain) or _TYPE_PROSE.search(plain)
    explained = _EXPLANATION.search(plain)
    if explained:
        rest = plain[explained.start(1) :]
        rest = re.split(r"\n[ \t]*\n|\n(?=.*(?:type|step)[ \t]*[:=])", rest, maxsplit=1)[0]
        out.explanation = " ".join(rest.split()) or None
    if out.step is None:
        if _SAYS_CORRECT.search(plain):
            return ParsedAnalysis(error="says_correct", detail="the analyser found no error")
        return ParsedAnalysis(error="unparseable", detail="no first erroneous step")
    if named:
        value = named.group(1).strip()
        out.error_type = error_type_of(value)
        if out.error_type is None:
            return ParsedAnalysis(
                error="unknown_error_type", detail=f"not in the taxonomy: {value[:80]!r}"
            )
        return out
    mentioned = {_NAMES[m.group(1)] for m in _ANY_NAME.finditer(_key_text(plain))}
    if len(mentioned) == 1:
        out.error_type = mentioned.pop()
        return out
    if mentioned:
        return ParsedAnalysis(
            error="unparseable", detail=f"several error types named: {', '.join(sorted(mentioned))}"
        )
    return ParsedAnalysis(error="unparseable", detail="no error type")


def _key_text(text: str) -> str:
    """`text` with every run of non-alphanumerics as `_`, so names match as keys."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower())


def _analysis_from_json(data: dict[str, Any]) -> ParsedAnalysis:
    step = None
    for name in ("first_error_step", "first_wrong_step", "error_step", "incorrect_step", "step"):
        if name in data:
            step = _int(data[name])
            break
    value = None
    for name in ("error_type", "wrong_type", "type", "category"):
        if isinstance(data.get(name), str):
            value = data[name]
            break
    explanation = data.get("explanation") or data.get("reason")
    if step is None:
        return ParsedAnalysis(error="unparseable", detail="JSON without a first erroneous step")
    if value is None:
        return ParsedAnalysis(error="unparseable", detail="JSON without an error type")
    error_type = error_type_of(value)
    if error_type is None:
        return ParsedAnalysis(
            error="unknown_error_type", detail=f"not in the taxonomy: {value[:80]!r}"
        )
    return ParsedAnalysis(step, error_type, explanation if isinstance(explanation, str) else None)


# ---------------------------------------------------------------- injection


@dataclass
class ParsedInjection:
    steps: list[str] = field(default_factory=list)
    explanation: str | None = None
    error: Reason | None = None
    detail: str | None = None


_STEP_LINE = re.compile(
    _LEAD + r"(?:\*\*|__)?step[ \t]+(\d{1,9})[ \t]*[:.)][ \t]*(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_NUMBER_LINE = re.compile(_LEAD + r"(?:\*\*|__)?(\d{1,9})[.)](?:\*\*|__)?[ \t]+(.*)$")
_EXPLANATION_TAG = re.compile(r"<explanation>(.*?)(?:</explanation>|$)", re.IGNORECASE | re.S)


def parse_injection(reply: str) -> ParsedInjection:
    text = answer_part(reply)
    data = json_object(text) if text.lstrip().startswith("{") else None
    if isinstance(data, dict):
        given = data.get("steps") or data.get("solution")
        said = data.get("explanation")
        if not isinstance(given, list) or not all(isinstance(s, str) for s in given) or not given:
            return ParsedInjection(error="unparseable", detail="JSON without a list of steps")
        clean = [_STEP_LINE.sub(r"\2", s).strip() for s in given]
        return ParsedInjection(clean, said if isinstance(said, str) else None)
    explanation: str | None = None
    tag = _EXPLANATION_TAG.search(text)
    if tag:
        explanation = " ".join(tag.group(1).split()) or None
        text = text[: tag.start()]
    steps: list[str] = []
    numbers: list[int] = []
    ended = False  # a blank line after the answer step: what follows is not the solution
    # `Step k:` lines, or, in a reply that has none, `k.` lines.
    step_line = _STEP_LINE if any(map(_STEP_LINE.match, text.splitlines())) else _NUMBER_LINE
    for line in text.splitlines():
        label = _EXPLANATION.match(DECOR.sub("", line))
        if label and steps:
            explanation = explanation or " ".join(label.group(1).split()) or None
            break
        found = step_line.match(line)
        if found and not ended:
            numbers.append(int(found.group(1)))
            steps.append(found.group(2).strip())
        elif steps and not ended and line.strip() and not _is_chatter(line):
            steps[-1] = f"{steps[-1]} {line.strip()}".strip()
        elif steps and not line.strip() and _ends_answer(steps[-1]):
            ended = True
    if not steps:
        return ParsedInjection(error="unparseable", detail="no `Step k:` lines")
    if numbers != list(range(1, len(numbers) + 1)):
        return ParsedInjection(error="unparseable", detail="steps not numbered 1, 2, 3, ...")
    return ParsedInjection(steps, explanation)


def _ends_answer(step: str) -> bool:
    return bool(re.search(r"answer\s+is|\\boxed", step, re.IGNORECASE))


def _is_chatter(line: str) -> bool:
    return bool(
        re.match(r"\s*(?:I hope|Let me know|Here is|Here's|Note:|Hope this)", line, re.IGNORECASE)
    )
