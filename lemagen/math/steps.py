"""Split a solution into reasoning steps, and put a model's steps in the one canonical form.

Order of preference: explicit `Step k:` markers; else non-empty lines (a display-math block that
spans lines stays one step); else sentences. A sentence never ends inside a number (`1.5`,
`$2.50`), inside `$...$` / `\\(...\\)` / `\\[...\\]` math or a `\\begin{...}...\\end{...}`
environment (`align*`, `cases`, `matrix`...), inside braces, or after an abbreviation (`Mr.`,
`e.g.`).

`canonical` is the one place where what a model's formatting put around its steps goes: every
step of model text that becomes a record's steps (samples, corrections, injected mistakes) and so
a training target passes through it. See its docstring for what it removes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lemagen.math.answers import brace_end

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
    """A model's solution as canonical steps: split, then `canonical`."""
    return canonical(split_steps(text), pred)


# ---------------------------------------------------------------- the canonical form

# Chatter: what a chat model says to its reader, not a step. `lemagen.lema.replies` cuts a
# corrector's reply with the same phrases.
CHATTY = (
    r"(?:I hope|Hope this|Let me know|Please let me know|Feel free|If you have"
    r"|Does this help|Is there anything|Good luck|Happy to help)\b"
)
_CHATTY_SENTENCE = re.compile(rf"^\s*{CHATTY}", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^(?:```|~~~)[\w+.-]*$")
_RULE_LINE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,}|={3,})$")
_HEADING = re.compile(r"^#{1,6}[ \t]+")
_LIST_MARKER = re.compile(r"^(?:[-*+\u2022\u2023\u25e6][ \t]+|\(?\d{1,3}[.)][ \t]+)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_BOLD_LABEL = re.compile(r"(\*\*|__)([^*_\n]{1,40}?)(?::\1|\1:)[ \t]*")
_ITALIC = re.compile(r"(?<![\w*\\])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*\\])\*(?![\w*])")
_CODE = re.compile(r"`([^`\n]+)`")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# The first steps of a chat model's solution that only announce one.
_PREAMBLE_WORDS = (
    r"^(?:(?:sure|okay|ok|alright|great|certainly|of course|absolutely|no problem)\b"
    r"|(?:first,? )?let'?s\b|let us\b|here(?:'s| is| are)\b|i(?:'ll| will| can| need)\b"
    r"|we(?:'ll| will| can| need to| have to| are asked)\b"
    r"|to (?:solve|answer|find|figure|determine|calculate|work)\b"
    r"|(?:(?:step[- ]by[- ]step|detailed|full) )?(?:solution|explanation|reasoning)"
)
_PREAMBLE = re.compile(_PREAMBLE_WORDS + r"\s*:?$)", re.IGNORECASE)
# How a step whose first sentence is a preamble starts (no sentence split needed to say not).
_PREAMBLE_START = re.compile(_PREAMBLE_WORDS + ")", re.IGNORECASE)
_ANSWER_CUE = re.compile(r"answer|\\boxed|\\fbox|####", re.IGNORECASE)
_AFTER_CUE = re.compile(r"answer\s*(?:is|:|=|was)\s*", re.IGNORECASE)
_FILLER = re.compile(
    r"\b(?:so|thus|therefore|hence|finally|in conclusion|in summary|the|our|my|final|correct"
    r"|answer|answers|is|was|would be|will be|result|solution|value|we|get|have|obtain"
    r"|that's|thats|this|it|of|to|question|problem|total)\b",
    re.IGNORECASE,
)
_MATH_MARKS = re.compile(r"\\[$()\[\]]|[$#*`]|\\text\{|\\[,;!]")


def canonical(steps: Sequence[str], pred: str | None) -> list[str]:
    """A model's steps in LEMA's layout, ending with one `The answer is X.` step (X = `pred`,
    the answer read from the text; with no answer, no closing step).

    Removed: list markers (`1.`, `-`, `*`), markdown emphasis, inline code marks and headings,
    a list item's bold title (`**April sales:**`),
    code fences and rules; `\\boxed{...}` around an answer (its content stays; the LaTeX of MATH
    steps is otherwise kept as written); first sentences that only announce a solution ("Let's
    break this problem down step by step."); chatter ("I hope this helps!"); the sentences at the
    end that only state the final answer ("Therefore, 160 is the answer.", "**Final Answer:**
    3", "$\\boxed{3}$", "#### 3"), which the closing step replaces. A label step (`May sales:`,
    its content on the next line) joins the step after it. Idempotent: canonical steps come back
    as they are."""
    out = [step for step in (_clean_step(s) for s in steps) if step]
    out = _without_preamble(out)
    out = _labels_joined(out)
    if pred is None:
        return [_unboxed(s) for s in out]
    closing = f"The answer is {pred}."
    if out and _is_closing(out[-1], pred):
        closing = out.pop()
    while out:
        kept = _without_answer_tail(out[-1], pred)
        if kept == out[-1]:
            break
        if kept:
            out[-1] = kept
        else:
            out.pop()
    return [*(_unboxed(s) for s in out), closing]


def _clean_step(step: str) -> str:
    lines = (_clean_line(line) for line in step.split("\n"))
    return "\n".join(line for line in lines if line)


# What any rule of `_clean_line` looks for; a line with none of it is kept as it is.
_MARKUP = re.compile(r"[*_#`~>=+\-\u2022\u2023\u25e6]|^\(?\d{1,3}[.)]")


def _clean_line(line: str) -> str:
    line = line.strip()
    if not _MARKUP.search(line):
        return line
    if _FENCE_LINE.match(line) or _RULE_LINE.match(line):
        return ""
    heading = _HEADING.match(line)
    if heading:
        line = line[heading.end() :]
        if not re.search(r"[\d$\\]", line):
            return ""  # a title ("## Solution", "### Final Answer"), not a step
    for _ in range(2):  # `- 1. ...`
        marker = _LIST_MARKER.match(line)
        if marker is None:
            break
        line = line[marker.end() :]
    label = _BOLD_LABEL.match(line)
    if label is not None and not re.search(r"\d|answer", label.group(2), re.IGNORECASE):
        line = line[label.end() :]  # `**April sales:** ...`: a list item's title
        if not line:
            return ""
    line = _BOLD.sub(r"\2", line)
    line = _ITALIC.sub(r"\1", line)
    line = _CODE.sub(r"\1", line)
    line = re.sub(r"^\*\*|\*\*$", "", line.strip()).strip()  # an unclosed `**Answer: 3`
    return "" if re.fullmatch(r"[*_#>\s]*", line) else line


def _without_preamble(steps: list[str]) -> list[str]:
    """Without the sentences at the start that only announce a solution (never the last step)."""
    steps = list(steps)
    while len(steps) > 1:
        first = steps[0].lstrip()
        if not (_PREAMBLE_START.match(first) or _CHATTY_SENTENCE.match(first)):
            break
        sentences = split_sentences(steps[0])
        keep = 0
        while keep < len(sentences) and _is_preamble(sentences[keep]):
            keep += 1
        if keep == 0:
            break
        if keep < len(sentences):
            steps[0] = steps[0][steps[0].find(sentences[keep]) :]
            break
        steps.pop(0)
    return steps


def _is_preamble(sentence: str) -> bool:
    if re.search(r"[\d$=\\]", sentence):
        return False  # numbers or math: a step
    return bool(_PREAMBLE.match(sentence.strip()) or _CHATTY_SENTENCE.match(sentence))


def _labels_joined(steps: list[str]) -> list[str]:
    """A step that ends with a colon (`May sales:`) joined to the step after it."""
    out: list[str] = []
    for step in steps:
        if out and out[-1].endswith(":"):
            glue = "\n" if step.startswith(("$$", "\\[", "\\begin")) else " "
            out[-1] = f"{out[-1]}{glue}{step}"
        else:
            out.append(step)
    return out


def _is_closing(step: str, pred: str) -> bool:
    """`The answer is X.` with X the answer (for MATH also `$X$`)."""
    return step in (f"The answer is {pred}.", f"The answer is ${pred}$.")


def _without_answer_tail(step: str, pred: str) -> str:
    """`step` without its last sentence when that only states the answer or is chatter, or
    without the clause of its last sentence that states the answer ("..., so the answer is 72.")."""
    sentences = split_sentences(step)
    if not sentences:
        return ""
    last = sentences[-1]
    head = step[: step.rfind(last)]
    if _CHATTY_SENTENCE.match(last) or _states_answer(last, pred):
        return head.rstrip()
    clause = _ANSWER_CLAUSE.search(last)
    if clause is not None and clause.start() > 0:
        return f"{head}{last[: clause.start()].rstrip(' ,;:')}."
    return step


# "..., so the answer is 72." / "..., which is the answer.": a clause that restates the answer.
_ANSWER_CLAUSE = re.compile(
    r"[,;:]?\s*(?:(?:and|so|thus|therefore|hence|which means|meaning)\s+)?(?:that\s+)?"
    r"(?:(?:the|our)\s+)?(?:final\s+)?answer\s*(?:is|:)\s*.{0,80}?\.?$"
    r"|[,;]?\s*(?:which|that|this)\s+is\s+(?:the|our)\s+(?:final\s+)?answer\.?$",
    re.IGNORECASE,
)


def _states_answer(sentence: str, pred: str) -> bool:
    """The sentence says what the final answer is and nothing else ("Therefore, 160 is the
    answer.", "Final Answer: $\\boxed{3}$", "#### 72"); a unit may follow the answer."""
    answer = _plain(pred)
    if not _ANSWER_CUE.search(sentence):
        return bool(answer) and _plain(sentence).rstrip(" .") == answer
    text = _plain(_unboxed(sentence, mark=True))
    boxed = re.search("\x00[^\x00]*\x00", text)
    after = _AFTER_CUE.search(text)
    at = text.rfind(answer) if answer else -1
    if boxed is not None:
        text = f"{text[: boxed.start()]}\x01{text[boxed.end() :]}"
    elif after is not None and len(text[after.end() :].split()) <= 8:
        text = f"{text[: after.end()]}\x01"  # "The answer is 18 + 5 = 23 apples."
    elif at >= 0:
        text = f"{text[:at]}\x01{text[at + len(answer) :]}"  # "160 is the answer."
    else:
        return False
    before, _, behind = text.partition("\x01")
    words_before = _FILLER.sub(" ", before).replace("\x00", " ")
    words_behind = _FILLER.sub(" ", behind).replace("\x00", " ")
    if re.sub(r"[.,;:!=()\s]+", "", words_before):
        return False
    rest = re.sub(r"[.,;:!=()\s]+", " ", words_behind).strip()
    return re.fullmatch(r"(?:[A-Za-z'-]+ ?){0,3}", rest) is not None


def _plain(text: str) -> str:
    """Text without math delimiters, markdown marks and digit-group commas, spaces collapsed."""
    text = _MATH_MARKS.sub(" ", text).replace("{", " ").replace("}", " ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _box_contents(text: str) -> list[str]:
    found = []
    for match in _BOX.finditer(text):
        end = brace_end(text, match.end() - 1)
        if end is not None:
            found.append(text[match.end() : end])
    return found


def _unboxed(text: str, *, mark: bool = False) -> str:
    """`\\boxed{X}` and `\\fbox{X}` as X (braces matched); `mark` puts NUL around X."""
    out = []
    at = 0
    for match in _BOX.finditer(text):
        if match.start() < at:
            continue
        end = brace_end(text, match.end() - 1)
        if end is None:
            continue
        inner = text[match.end() : end]
        out += [text[at : match.start()], f"\x00{inner}\x00" if mark else inner]
        at = end + 1
    return "".join(out) + text[at:]


def render_numbered(steps: Sequence[str], start: int = 1) -> str:
    """`Step 1: ...` lines."""
    return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start))
