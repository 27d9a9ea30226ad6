"""Corrector replies, as models write them, read into their parts.

A reply is the text after `Incorrect Step:` in the LEMA layout (methods.md §1.4):

    Step k.
    Explanation: why step k is wrong
    Correct Solution:
    {
    ...
    Step k: the rewritten step
    Step m: The answer is X.
    }

Also read: the `Incorrect Step:` label repeated, anywhere in a preamble ("Steps 1 and 2 are
correct. Incorrect Step: Step 3" gives 3); markdown headings and bold labels (`### Explanation`,
`**Correct Solution:**`, `**Step 3:**`); the solution in braces, in a code fence (with or without
a language) or in neither; chatter after the solution (anything after the closing brace or fence,
and after the line that states the final answer); `[...]` or `... (unchanged)` for the elision.
A solution numbered from `Step k` with k > 1 and no `...` is read as elided: steps 1..k-1 are the
original's. What the parser cannot read is an `error` (the record's `reject_reason`); whether the
parts it read are a trustworthy correction is `filter`'s judgement (`lemagen.lema.filter`).

`parse_json_reply` reads the `--json` mode's object with the same rules for its steps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lemagen.math import answers
from lemagen.math.steps import CHATTY

# The JSON object `correct --json` asks for (`response_format`, json_schema, strict).
JSON_SCHEMA: dict[str, Any] = {
    "name": "lema_correction",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "incorrect_step": {
                "type": "integer",
                "description": "The number of the first incorrect step of the original solution.",
            },
            "explanation": {"type": "string", "description": "Why that step is incorrect."},
            "corrected_steps": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The corrected solution from the incorrect step on: the first "
                "item replaces that step, the last one ends with 'The answer is X.'",
            },
        },
        "required": ["incorrect_step", "explanation", "corrected_steps"],
        "additionalProperties": False,
    },
}

_DECOR = r"[*_]{1,2}"
# A section label at the start of a line: `Explanation:`, `**Explanation:**`, `### Explanation`.
_LABEL = re.compile(
    rf"(?im)^[ \t]*(?P<head>#{{1,6}}[ \t]*|(?:[-+][ \t]+)?(?:{_DECOR})?[ \t]*)"
    r"(?P<label>incorrect[ \t]+step|explanation|correct(?:ed)?[ \t]+solution)"
    rf"(?P<tail>[ \t]*(?:{_DECOR})?[ \t]*(?P<colon>[:\uff1a])?[ \t]*(?:{_DECOR})?[ \t]*)"
)
# The step number after an `Incorrect Step` label (anywhere: a preamble may come first).
_STEP_LABEL = re.compile(
    rf"incorrect\s+step(?:\s+is)?\s*(?:{_DECOR})?\s*[:\uff1a]?\s*(?:{_DECOR})?\s*\{{?\s*"
    r"(?:step\s*)?(\d{1,9})\b",
    re.IGNORECASE,
)
# The LEMA continuation: the reply starts with the step (` Step 2.`, `2`, `{Step 2}`).
_STEP_LEAD = re.compile(
    rf"^\s*(?:{_DECOR})?\s*\{{?\s*(?:step\s*)?(\d{{1,9}})\s*\}}?\s*(?:{_DECOR})?\s*(?=[.:\uff1a,;)]|\n|$)",
    re.IGNORECASE,
)
# Prose that names one step: "the error is in Step 3", "Step 3 is incorrect".
_STEP_PROSE = re.compile(
    r"(?:incorrect|wrong|erroneous|first\s+mistaken)\s+step\s+is\s+(?:step\s*)?(\d{1,9})\b"
    r"|(?:error|mistake)\s+(?:is\s+|occurs\s+|appears\s+|lies\s+)?in\s+step\s*(\d{1,9})\b"
    r"|\bstep\s*(\d{1,9})\s+is\s+(?:the\s+first\s+)?(?:incorrect|wrong|erroneous)",
    re.IGNORECASE,
)
_STEP_LINE = re.compile(
    rf"^(?:[-+][ \t]+|#{{1,6}}[ \t]*)?(?:{_DECOR})?[ \t]*step[ \t]*(\d{{1,9}})[ \t]*(?:{_DECOR})?"
    rf"[ \t]*(?:[:.)\uff1a]|$)[ \t]*(?:{_DECOR}(?![^ \t]*{_DECOR}))?[ \t]*(.*)$",
    re.IGNORECASE,
)
_ELISION = re.compile(r"^(?:[-+][ \t]+)?\[?[ \t]*(?:\.{3,}|…)[ \t]*\]?[ \t]*(?:\(.*\))?[ \t]*$")
_PAREN = re.compile(
    r"[ \t]*\([^)\n]*\)[ \t]*(?:[*_]{1,2})?[ \t]*[:\uff1a]?[ \t]*(?:[*_]{1,2})?[ \t]*$",
    re.MULTILINE,
)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[\w+.-]*[ \t]*$")
_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$")
# A line stating the final answer: what the solution ends with.
_ANSWER_LINE = re.compile(r"answer\s+is|\\boxed|\\fbox|####", re.IGNORECASE)
# What may follow the answer line and still belong to it: closing math, a full stop.
_CLOSER = re.compile(r"^[ \t]*(?:\$\$|\\\]|\\\)|\\end\{[^}]*\}|[.$)\]])*[ \t.]*$")
# Chatter: after the answer sentence on the same line, or starting a line of the last step.
_CHATTY = CHATTY
_CHATTER = re.compile(rf"(?<=[.!])\s+{_CHATTY}.*$", re.IGNORECASE)
_CHATTER_LINE = re.compile(rf"^\s*{_CHATTY}", re.IGNORECASE)


@dataclass
class ParsedReply:
    incorrect_step: int | None = None
    explanation: str | None = None
    corrected_from: int | None = None
    corrected_steps: list[str] = field(default_factory=list)
    elided: bool = False
    error: str | None = None


def parse_reply(reply: str) -> ParsedReply:
    """Parse a corrector reply (the text after `Incorrect Step:`)."""
    text = answers.cut_run_on(reply)
    out = ParsedReply()
    labels = [m for m in _LABEL.finditer(text) if _is_label(m, text)]
    explanation = next((m for m in labels if m["label"].lower() == "explanation"), None)
    after = explanation.end() if explanation is not None else 0
    solution = next(
        (m for m in labels if m["label"].lower() != "explanation" and m.start() >= after
         and not m["label"].lower().startswith("incorrect")),
        None,
    )  # fmt: skip
    head_end = (
        min(m.start() for m in (explanation, solution) if m is not None)
        if (explanation or solution)
        else len(text)
    )
    out.incorrect_step = _incorrect_step(text[:head_end])
    if out.incorrect_step is None:
        out.error = "no incorrect step number"
        return out
    if explanation is not None:
        end = solution.start() if solution is not None else len(text)
        out.explanation = _clean_explanation(text[_label_end(explanation, text) : end])
    if out.explanation is None:
        out.error = "no explanation"
        return out
    if solution is None:
        out.error = "no 'Correct Solution:' block"
        return out
    _read_steps(_block(text[_label_end(solution, text) :]), out)
    if not out.corrected_steps:
        out.error = "empty 'Correct Solution:' block"
    return out


def parse_json_reply(reply: str) -> ParsedReply:
    """Parse a `--json` reply: `{"incorrect_step", "explanation", "corrected_steps"}`, the
    steps from the incorrect one on (a leading `...` and `Step k:` labels are allowed)."""
    out = ParsedReply()
    text = reply.strip()
    fenced = re.fullmatch(r"(?s)```[\w-]*\s*(.*?)\s*```", text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        out.error = "not a JSON object"
        return out
    if not isinstance(data, dict):
        out.error = "not a JSON object"
        return out
    step, explanation, steps = (
        data.get("incorrect_step"),
        data.get("explanation"),
        data.get("corrected_steps"),
    )
    if isinstance(step, str) and re.fullmatch(r"\s*(?:step\s*)?\d{1,9}\s*\.?\s*", step, re.I):
        step = int(re.sub(r"\D", "", step))
    if not isinstance(step, int) or isinstance(step, bool):
        out.error = "no incorrect step number"
        return out
    out.incorrect_step = step
    if not isinstance(explanation, str) or not explanation.strip():
        out.error = "no explanation"
        return out
    out.explanation = explanation.strip()
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        out.error = "no 'corrected_steps' list"
        return out
    lines = [s.strip() for s in steps if s.strip()]
    numbered = any(_STEP_LINE.match(s) for s in lines)
    if not numbered and lines and not _ELISION.match(lines[0]):
        lines = [f"Step {step + i}: {s}" for i, s in enumerate(lines)]
    if step > 1 and lines and not _ELISION.match(lines[0]):
        lines.insert(0, "...")
    _read_steps("\n".join(lines), out)
    if not out.corrected_steps:
        out.error = "empty 'corrected_steps' list"
    return out


def _is_label(match: re.Match[str], text: str) -> bool:
    """A label has a colon, a heading or bold mark, or the line to itself (but for a
    parenthetical: "Correct Solution (from Step 3):")."""
    if match["colon"] or "#" in match["head"] or "*" in match["head"] or "_" in match["head"]:
        return True
    return (
        _PAREN.match(text, match.end()) is not None
        or not text[match.end() :].split("\n", 1)[0].strip()
    )


def _label_end(match: re.Match[str], text: str) -> int:
    """Where a label's content starts: on the next line after a heading without a colon
    ("### Explanation of the error"), after a parenthetical ("Correct Solution (from Step 3):"),
    else right after the label."""
    if "#" in match["head"] and not match["colon"]:  # a heading is a title: content below
        end = text.find("\n", match.end())
        return len(text) if end < 0 else end
    rest = _PAREN.match(text, match.end())
    return rest.end() if rest is not None else match.end()


def _incorrect_step(head: str) -> int | None:
    labelled = _STEP_LABEL.search(head)
    if labelled is not None:
        return int(labelled.group(1))
    lead = _STEP_LEAD.match(head)
    if lead is not None:
        return int(lead.group(1))
    named = {int(next(g for g in m.groups() if g)) for m in _STEP_PROSE.finditer(head)}
    return named.pop() if len(named) == 1 else None


def _clean_explanation(text: str) -> str | None:
    lines = [line for line in text.strip().split("\n") if not _RULE.match(line)]
    return "\n".join(lines).strip() or None


def _block(body: str) -> str:
    """The corrected solution inside its braces or code fence (or the body, if neither),
    without what comes before the block or after it."""
    lines = body.split("\n")
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if _FENCE.match(raw):
            end = next((j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j])), None)
            return _block("\n".join(lines[i + 1 : end]))
        if line.startswith("{"):
            rest = "\n".join([line[1:], *lines[i + 1 :]])
            close = re.search(r"(?m)^[ \t]*\}[ \t]*$", rest)
            return rest[: close.start()] if close else rest
        if _STEP_LINE.match(line) or _ELISION.match(line):
            break  # the solution itself, unbraced
    return body


def _read_steps(body: str, out: ParsedReply) -> None:
    numbered: list[tuple[int, str]] = []
    loose: list[str] = []
    for raw in body.split("\n"):
        line = raw.strip()
        if not line or _RULE.match(line):
            continue
        if _ELISION.match(line):
            if not numbered:
                out.elided = True
                loose = []  # a preamble before the `...` ("Here is the fix:")
            continue
        step = _STEP_LINE.match(line)
        if step:
            numbered.append((int(step.group(1)), step.group(2).strip()))
        elif numbered:
            index, previous = numbered[-1]
            numbered[-1] = (index, f"{previous}\n{line}" if previous else line)
        else:
            loose.append(line)
    if numbered:
        out.corrected_from = numbered[0][0]
        steps = [text for _, text in numbered if text]
        out.corrected_steps = [*steps[:-1], *_end_at_answer(steps[-1:])]
        if out.corrected_from > 1:
            out.elided = True  # numbered from Step k without `...`: steps 1..k-1 are unchanged
    elif loose:
        out.corrected_from = out.incorrect_step if out.elided else 1
        out.corrected_steps = _end_at_answer(loose)


def _end_at_answer(steps: list[str]) -> list[str]:
    """Drop chatter: lines from "I hope this helps!", "Let me know..." on, and what follows
    the last line stating the final answer (keeping closing math on the lines after it).
    Numbered solutions pass only their last step, so no numbered step is ever dropped."""
    chatter = next((i for i, step in enumerate(steps) if _CHATTER_LINE.match(step)), None)
    steps = steps[:chatter] if chatter is not None and chatter > 0 else steps
    if steps:
        lines = steps[-1].split("\n")
        cut = next((i for i, line in enumerate(lines) if _CHATTER_LINE.match(line)), None)
        if cut:
            steps = [*steps[:-1], "\n".join(lines[:cut])]
    if not steps:
        return steps
    answer_at = next(
        (i for i in range(len(steps) - 1, -1, -1) if _ANSWER_LINE.search(steps[i])), None
    )
    if answer_at is None:
        return steps
    lines = steps[answer_at].split("\n")
    last = max(i for i, line in enumerate(lines) if _ANSWER_LINE.search(line))
    while last + 1 < len(lines) and _CLOSER.match(lines[last + 1]):
        last += 1
    kept = lines[: last + 1]
    kept[-1] = _CHATTER.sub("", kept[-1]).rstrip()
    return [*steps[:answer_at], "\n".join(kept)]
