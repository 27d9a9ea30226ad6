"""Final-answer extraction from solution text: pure string work, no sympy.

Extraction is kept apart from comparison (`grading.py`), as Math-Verify does: this module finds
*which* text is the answer; grading decides whether it equals the gold answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

# A completion that goes on to invent the next few-shot item is cut there before extraction.
_RUN_ON = re.compile(r"\n[ \t]*\n[ \t]*(?:Question|Problem|Q)[ \t]*:")

# A minus sign right after a digit or `)` is subtraction (`20-5`), not a negative number.
_NUMBER = r"(?:(?<![\w)])[-\u2212])?(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(rf"({_NUMBER})\s*/\s*({_NUMBER})")
_LATEX_FRAC_RE = re.compile(r"(-?)\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_ANSWER_IS_RE = re.compile(r"answer\s+is\s*[:\uff1a]?\s*", re.IGNORECASE)
_HASHES_RE = re.compile(r"####\s*")
_LABEL_RE = re.compile(r"(?im)^[ \t*]*(?:final answer|answer|a)[ \t*]*[:\uff1a][ \t*]*")


def cut_run_on(text: str) -> str:
    """Cut a completion where it starts inventing the next `Question:`."""
    match = _RUN_ON.search(text)
    return text[: match.start()] if match else text


def find_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces matched."""
    best: str | None = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth = 0
            for i in range(start, len(text)):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        best = text[start + 1 : i]
                        break
        else:  # `\boxed 5`
            token = re.match(r"[^\s$.,]+", text[start:])
            if token:
                best = token.group(0)
    return best.strip() if best is not None else None


# ---------------------------------------------------------------- numbers (GSM8K)


def parse_number(text: str) -> Fraction | None:
    """Read one number from answer text: `1,250`, `$2.50`, `25%`, `3/4`, `\\frac{3}{4}`, `-7`.

    Currency signs, percent signs, unit words and trailing periods are ignored; the first number
    in the text is taken. Never evaluates anything.
    """
    text = text.replace("\\$", "$").replace("\\%", "%").replace("\\!", "").replace("\u2212", "-")
    text = text.replace("{,}", ",")
    latex = _LATEX_FRAC_RE.search(text)
    if latex:
        num, den = _to_fraction(latex.group(2)), _to_fraction(latex.group(3))
        if num is not None and den:
            value = num / den
            return -value if latex.group(1) else value
    fraction = _FRACTION_RE.search(text)
    first = _NUMBER_RE.search(text)
    if fraction and first and fraction.start() == first.start():
        num, den = _to_fraction(fraction.group(1)), _to_fraction(fraction.group(2))
        if num is not None and den:
            return num / den
    if first:
        return _to_fraction(first.group(0))
    return None


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "").replace(" ", "").replace("\u2212", "-")
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def format_number(value: Fraction) -> str:
    """Canonical text: `18`, `2.5`, `-0.125`, or `1/3` when no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    scaled = value
    while scaled.denominator != 1:
        scaled *= 10
        digits += 1
    sign = "-" if scaled < 0 else ""
    whole = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return f"{sign}{whole[:-digits]}.{whole[-digits:]}"


def _number_after(text: str, pattern: re.Pattern[str]) -> str | None:
    """The number right after the last match of `pattern` that is followed by one."""
    for match in reversed(list(pattern.finditer(text))):
        tail = text[match.end() :]
        tail = tail.split("\n", 1)[0]
        boxed = find_boxed(tail)
        if boxed is not None:
            tail = boxed
        value = parse_number(tail[:80])
        if value is not None:
            return format_number(value)
    return None


def extract_gsm8k(text: str) -> str | None:
    """The final numeric answer of a GSM8K-style solution, canonical, or None.

    Forms, most explicit first: `#### 18`, `The answer is 18`, `\\boxed{18}`, a line `A: 18` /
    `Answer: 18`, then the last number in the text.
    """
    text = cut_run_on(text)
    for pattern in (_HASHES_RE, _ANSWER_IS_RE):
        found = _number_after(text, pattern)
        if found is not None:
            return found
    boxed = find_boxed(text)
    if boxed is not None:
        value = parse_number(boxed)
        if value is not None:
            return format_number(value)
    found = _number_after(text, _LABEL_RE)
    if found is not None:
        return found
    numbers = list(_NUMBER_RE.finditer(_strip_annotations(text)))
    for match in reversed(numbers):
        value = _to_fraction(match.group(0))
        if value is not None:
            return format_number(value)
    return None


def _strip_annotations(text: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", text)


# ---------------------------------------------------------------- LaTeX (MATH)


def _strip_math_delimiters(answer: str) -> str:
    answer = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) > len(left + right):
            return answer[len(left) : -len(right)].strip()
    return answer


def extract_math(text: str) -> str | None:
    """The final answer of a MATH-style solution as LaTeX text, or None.

    The last `\\boxed{}`; else the text after the last `The answer is` up to the end of its line
    (also `Final Answer: The final answer is $x$. I hope it is correct.`). No last-number guess:
    a MATH answer can be any expression, so a missing marker is `no_answer`, not a guess.
    """
    text = cut_run_on(text)
    boxed = find_boxed(text)
    if boxed:
        return boxed
    matches = list(_ANSWER_IS_RE.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end() :].split("\n", 1)[0].strip()
    tail = re.sub(r"\.?\s*I hope it is correct\.?\s*$", "", tail)
    if tail.startswith("$"):
        end = tail.find("$", 2 if tail.startswith("$$") else 1)
        if end > 0:
            tail = tail[: end + (2 if tail.startswith("$$") else 1)]
    tail = tail.rstrip(" .")
    tail = _strip_math_delimiters(tail).rstrip(" .")
    return tail or None


def extract(task: str, text: str) -> str | None:
    """The final answer of `text` for `task` (`gsm8k` or `math`)."""
    return extract_gsm8k(text) if task == "gsm8k" else extract_math(text)


# ---------------------------------------------------------------- gold answers


def gsm8k_gold(solution: str) -> str | None:
    """Gold from a GSM8K rationale: the number after `####` (commas removed)."""
    match = re.search(r"####\s*(.+?)\s*$", solution.strip())
    if not match:
        return None
    value = parse_number(match.group(1))
    return format_number(value) if value is not None else None


def math_gold(solution: str) -> str | None:
    """Gold from a MATH solution: a trailing `The answer is: X` (MATH-500 / PRM800K shape),
    else the last `\\boxed{}`."""
    match = re.search(r"The answer is:\s*(.+?)\s*$", solution)
    if match and "\n" not in match.group(1):
        return match.group(1).strip()
    return find_boxed(solution)
