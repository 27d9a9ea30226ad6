"""Split a solution into reasoning steps.

Order of preference: explicit `Step k:` markers; else non-empty lines (a display-math block that
spans lines stays one step); else sentences. A sentence never ends inside a number (`1.5`,
`$2.50`), inside `$...$` / `\\(...\\)` / `\\[...\\]` math or a `\\begin{...}...\\end{...}`
environment (`align*`, `cases`, `matrix`...), inside braces, or after an abbreviation (`Mr.`,
`e.g.`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_STEP_MARKER = re.compile(
    r"(?im)^[ \t]*(?:\*\*|#+ *)?step[ \t]*(\d+)[ \t]*(?:\*\*)?[ \t]*[:.)][ \t]*(?:\*\*)?"
)
_ANSWER_STEP = re.compile(r"answer\s+is", re.IGNORECASE)
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "no",
        "fig",
        "eq",
        "ca",
        "mt",
        "ft",
        "in",
        "oz",
        "lb",
        "lbs",
        "hr",
        "hrs",
        "min",
        "mins",
        "sec",
        "a.m",
        "p.m",
        "cf",
        "al",
        "prof",
        "inc",
        "ltd",
        "co",
    }
)


def split_steps(text: str) -> list[str]:
    """The steps of `text`, each stripped, none empty."""
    text = text.strip()
    if not text:
        return []
    markers = list(_STEP_MARKER.finditer(text))
    if markers:
        steps = []
        for i, match in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
            steps.append(_one_line(text[match.end() : end]))
        preamble = text[: markers[0].start()].strip()
        if preamble:
            steps.insert(0, _one_line(preamble))
        return [s for s in steps if s]
    lines = _math_aware_lines(text)
    if len(lines) > 1:
        return lines
    return split_sentences(text)


def _one_line(chunk: str) -> str:
    return re.sub(r"[ \t]*\n[ \t]*", " ", chunk.strip())


def _math_aware_lines(text: str) -> list[str]:
    """Non-empty lines, joining lines that sit inside an open `$$`, `\\[` or `\\begin` block."""
    if "$$" not in text and "\\[" not in text and "\\begin" not in text:
        return [line for line in (raw.strip() for raw in text.split("\n")) if line]  # no block
    out: list[str] = []
    pending: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line and not pending:
            continue
        pending.append(line)
        if _math_open("\n".join(pending)):
            continue
        joined = "\n".join(p for p in pending if p)
        pending = []
        if joined:
            out.append(joined)
    if pending:
        joined = "\n".join(p for p in pending if p)
        if joined:
            out.append(joined)
    return out


def _math_open(chunk: str) -> bool:
    if chunk.count("$$") % 2:
        return True
    if chunk.count("\\[") > chunk.count("\\]"):
        return True
    return len(re.findall(r"\\begin\{", chunk)) > len(re.findall(r"\\end\{", chunk))


def split_sentences(text: str, *, latex: bool = False) -> list[str]:
    """Sentences of one paragraph, math- and number-aware. In `latex` text a bare `$` always
    opens math (a dollar sign is `\\$`), even when the math goes on over a line break."""
    sentences: list[str] = []
    start = 0
    i = 0
    n = len(text)
    in_math: str | None = None
    depth = 0  # open braces outside math (`\\text{...}`, `\\boxed{...}`)
    while i < n:
        c = text[i]
        if in_math is not None:
            if text.startswith(in_math, i) and (in_math != "$" or not text.startswith("$$", i)):
                i += len(in_math)
                in_math = None
                continue
            if c == "\\":
                i += 2
                continue
            i += 1
            continue
        if c == "\\" and text.startswith("\\begin{", i):
            end = _environment_end(text, i)
            if end is not None:
                i = end
                continue
        if c == "{":
            depth += 1
        elif c == "}" and depth:
            depth -= 1
        if c == "\\" and i + 1 < n:
            if text[i + 1] in "([":
                in_math = "\\)" if text[i + 1] == "(" else "\\]"
                i += 2
                continue
            i += 2  # an escaped character such as `\$` is not math
            continue
        if c == "$":
            if text.startswith("$$", i):
                in_math = "$$"
                i += 2
                continue
            if (latex and "$" in text[i + 1 :]) or _opens_inline_math(text, i):
                in_math = "$"
            i += 1
            continue
        if c in ".!?" and not depth and _sentence_ends(text, i):
            sentence = text[start : i + 1].strip()
            if sentence:
                sentences.append(sentence)
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


_ENVIRONMENT = re.compile(r"\\(begin|end)\{([^{}]*)\}")


def _environment_end(text: str, i: int) -> int | None:
    """Where the environment that begins at `i` ends (after its `\\end{...}`), nested ones
    counted; None if it is never closed."""
    depth = 0
    for match in _ENVIRONMENT.finditer(text, i):
        depth += 1 if match.group(1) == "begin" else -1
        if depth == 0:
            return match.end()
    return None


def _opens_inline_math(text: str, i: int) -> bool:
    """`$x^2$` opens math; `$2.50` (a price) does not: math needs a closing `$` on the same line
    and does not start with a digit followed by plain prose."""
    close = text.find("$", i + 1)
    newline = text.find("\n", i + 1)
    if close == -1 or (newline != -1 and newline < close):
        return False
    inner = text[i + 1 : close]
    # `$5 and $7`: a price followed by prose up to the next price.
    return not re.match(r"\d[\d,.]*\s+[A-Za-z]{2,}", inner)


def _sentence_ends(text: str, i: int) -> bool:
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt and not nxt.isspace():
        return False  # `1.5`, `e.g.x`, `...`
    if text[i] == ".":
        word = re.search(r"([A-Za-z.]+)$", text[:i])
        if word:
            token = word.group(1).lower()
            if token in _ABBREVIATIONS or (
                len(token) == 1 and token.isalpha() and text[i - 1].isupper()
            ):
                return False
    rest = text[i + 1 :].lstrip()
    return not rest or not rest[0].islower()


def is_answer_step(step: str) -> bool:
    return bool(_ANSWER_STEP.search(step))


def solution_steps(text: str, pred: str | None) -> list[str]:
    """Steps for the corrector: the split text, ending with a `The answer is X.` step."""
    steps = split_steps(text)
    if pred is not None and (not steps or not is_answer_step(steps[-1])):
        steps.append(f"The answer is {pred}.")
    return steps


def render_numbered(steps: Sequence[str], start: int = 1) -> str:
    """`Step 1: ...` lines."""
    return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start))
