"""Test-set hygiene: find training questions that overlap a test set.

A training question is contaminated when, after normalisation (lower case, punctuation and
LaTeX markup to spaces, whitespace collapsed), it equals a test question, or when at least
`overlap` of its word n-grams occur in one single test question. Short questions with fewer
than n words are compared whole.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from lemagen.errors import InputError
from lemagen.records.inputs import read_input
from lemagen.records.problems import question_of

DEFAULT_NGRAM = 8
DEFAULT_OVERLAP = 0.5
_MARKUP = re.compile(r"\\[a-zA-Z]+|[^\w\s]|_")


def normalise(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text.lower()).split())


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class HeldOut:
    n: int = DEFAULT_NGRAM
    overlap: float = DEFAULT_OVERLAP
    _exact: dict[str, str] = field(default_factory=dict)  # normalised question -> where
    _index: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    _where: list[str] = field(default_factory=list)

    def load(self, path: str) -> int:
        """Index the questions of a test set (any input format; field `question` or
        `problem`)."""
        count = 0
        for where, record in read_input(path):
            if isinstance(record, InputError):
                raise record
            text = question_of(record, where)
            norm = normalise(text)
            self._exact.setdefault(norm, where)
            index = len(self._where)
            self._where.append(where)
            for gram in ngrams(norm.split(), self.n):
                self._index[gram].add(index)
            count += 1
        return count

    def match(self, question: str) -> str | None:
        """Where the overlapping test question is, or None."""
        norm = normalise(question)
        exact = self._exact.get(norm)
        if exact is not None:
            return f"{exact} (exact)"
        grams = ngrams(norm.split(), self.n)
        if not grams:
            return None
        hits: Counter[int] = Counter()
        for gram in grams:
            for index in self._index.get(gram, ()):
                hits[index] += 1
        if not hits:
            return None
        index, shared = hits.most_common(1)[0]
        share = shared / len(grams)
        if share >= self.overlap:
            return f"{self._where[index]} ({share:.0%} of {self.n}-grams)"
        return None
