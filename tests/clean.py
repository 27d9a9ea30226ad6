"""What a clean training target does not hold: `dirt(solution)` names what a model's
formatting left in one solution as a target writes it (steps on lines, `Step k: ` labels, or
one paragraph). Used by `tests/test_clean_targets.py` and to count leftovers in real replies.

* `list`: a list marker starting a line, a step or a sentence (`1. `, `- `, `* `)
* `markdown`: `**`, `__`, a heading `#`, backticks, `*emphasis*`
* `boxed`: `\\boxed` or `\\fbox`
* `twice`: the closing `The answer is X.` follows a sentence that also states the answer
* `preamble`: a sentence that only announces the solution ("Let's break this problem down...")
* `chatter`: "I hope this helps", "Let me know..."
* `closing`: the solution does not end with one `The answer is X.`
"""

from __future__ import annotations

import re
from typing import Any

from lemagen.math.steps import split_sentences

_LABEL = re.compile(r"(?m)^Step \d+: ")
_LIST = re.compile(r"(?m)(?:^|[.:!?] )[ \t]*(?:[-*\u2022]|\d{1,2}[.)])[ \t]+(?=\S)")
_MARKDOWN = re.compile(
    r"\*\*|__|(?m:^[ \t]*#{1,6}[ \t])|`|(?<![\w*\\])\*(?=[^\s*])[^*\n]+(?<=[^\s*])\*(?![\w*])"
)
_BOXED = re.compile(r"\\boxed|\\fbox")
_CUE = re.compile(r"answer|\\boxed|####|final result", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^(?:sure|okay|let'?s (?:break|solve|think|work)|here'?s how|to solve this)\b", re.I
)
_CHATTER = re.compile(r"I hope|Hope this|Let me know|Feel free", re.IGNORECASE)
_CLOSING = re.compile(r"The answer is [^\n]+\.")


def dirt(solution: str, *, closed: bool = True) -> set[str]:
    """What `solution` holds of the list above (`closed`: a whole solution, not a prefix)."""
    text = solution.strip()
    found = set()
    body = _LABEL.sub("", text)
    if _LIST.search(body):
        found.add("list")
    if _MARKDOWN.search(body):
        found.add("markdown")
    if _BOXED.search(body):
        found.add("boxed")
    if _CHATTER.search(body):
        found.add("chatter")
    sentences = [s for line in body.split("\n") for s in split_sentences(line)]
    if any(_PREAMBLE.match(s) and not re.search(r"\d", s) for s in sentences):
        found.add("preamble")
    closings = [i for i, s in enumerate(sentences) if s.startswith("The answer is ")]
    if not closed:
        return found
    if not closings or closings[-1] != len(sentences) - 1 or not _CLOSING.fullmatch(sentences[-1]):
        found.add("closing")
    elif len(sentences) > 1 and _CUE.search(sentences[-2]):
        found.add("twice")
    return found


def solutions(fmt: str, row: dict[str, Any]) -> list[tuple[str, bool]]:
    """The solutions a training row of `fmt` trains on, each as written with whether it is
    whole (a step-labelled prefix through a wrong step is not)."""
    if fmt in ("lema", "filter"):
        completion = str(row["completion"])
        if "Correct Solution:" not in completion:
            return [(completion, True)]  # a CoT record
        body = completion.split("Correct Solution:\n{\n", 1)[1].rsplit("\n}", 1)[0]
        return [(body.removeprefix("...\n"), True)]
    if fmt == "cot":
        return [(str(row["completion"]), True)]
    if fmt == "dpo":
        return [(str(row["chosen"]), True), (str(row["rejected"]), True)]
    if fmt == "lemma":
        return [(str(row["output"]), True)]
    if fmt == "prm":
        return [("\n".join(row["completions"]), all(row["labels"]))]
    if fmt == "math-shepherd":
        tagged = str(row["input"])
        steps = tagged[tagged.index("Step 1: ") :]
        return [(re.sub(r" \u043a\u0438$", "", steps, flags=re.M), " -" not in row["label"])]
    raise ValueError(fmt)
