"""`lemagen evolve`: correction-centric evolution (LEMA, methods.md §1.9).

The seed pool is the questions of the corrections `filter` would keep (too easy: no mistakes;
too hard: no trustworthy correction). `--samples` bootstrap draws (with replacement, seeded)
pick seeds; the evolving model writes one new, related question per draw (our own prompt, in the
role the paper describes); then `--votes` answers from the same model give a pseudo-gold answer
by majority, and a question whose answers all differ is set aside. The output is problems JSONL
that `lemagen sample` takes, each with its seed question's id.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.engine import (
    Call,
    EngineConfig,
    Generation,
    RequestFailed,
    RequestShape,
    Sampling,
    run_rows,
)
from lemagen.lema.filter import check
from lemagen.lema.sample import _vote
from lemagen.math.thinking import split_thinking
from lemagen.records import Correction, Evolved, Problem, Sample, read_sample_or_correction
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stage.templates import Template

EVOLVE_VARIABLES = {"question"}
SUMMARY_KEYS = [
    "seeds",
    "draws",
    "created",
    "written",
    "unusable",
    "no_agreement",
    "request_failed",
    "budget_exhausted",
    "bad_rows",
]
_LABEL = re.compile(r"#\s*Created Question\s*#\s*:?", re.IGNORECASE)
_ANSWER_TAIL = re.compile(r"\n\s*(?:#?\s*(?:Answer|Solution)\b).*", re.IGNORECASE | re.DOTALL)


def created_question(reply: str) -> str | None:
    """The new question in an evolution reply: after a `#Created Question#:` label if the model
    repeated it, without a trailing answer or solution; None when nothing usable is left."""
    text = split_thinking(reply).answer
    label = list(_LABEL.finditer(text))
    if label:
        text = text[label[-1].end() :]
    text = _ANSWER_TAIL.sub("", text).strip().strip('"').strip()
    return text if (len(text) >= 15 and "?" in text) or len(text) >= 40 else None


class EvolveStage(EngineStage[Sample | Correction]):
    name = "evolve"

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: str,
        template: Template,
        answer_template: Template,
        samples: int,
        votes: int,
        seed: int,
        sampling: Sampling,
        vote_sampling: Sampling,
        check_timeout: float,
        max_pending: int,
        request: RequestShape | None = None,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.model = model
        self.template = template
        self.answer_template = answer_template
        self.samples = samples
        self.votes = votes
        self.seed = seed
        self.sampling = sampling
        self.vote_sampling = vote_sampling
        self.request = request or RequestShape()
        self._failed: list[SetAside] = []

    def read(self, data: dict[str, Any], where: str) -> Sample | Correction:
        return read_sample_or_correction(data, where)

    def calls(self, row: Sample | Correction) -> list[Call]:  # --dry-run: the evolution calls
        if not isinstance(row, Correction) or check(row) is not None:
            return []
        return [self._evolve_call(row.problem, 1)]

    def _evolve_call(self, problem: Problem, n: int) -> Call:
        prompt = self.template.render(question=problem.question).rstrip()
        return self.request.call(self.model, prompt, n, self.sampling)

    def _vote_call(self, question: str) -> Call:
        prompt = self.answer_template.render(question=question)
        return self.request.call(self.model, prompt, self.votes, self.vote_sampling)

    def run(self, rows: Iterable[Sample | Correction], hooks: Hooks) -> Iterator[Output]:
        pool: dict[str, Problem] = {}
        for record in rows:  # the seed pool: questions of corrections filter keeps
            hooks.on_row(1)
            if isinstance(record, Correction) and check(record) is None:
                pool.setdefault(record.id, record.problem)
        self.counts["seeds"] = len(pool)
        if not pool:
            return
        rng = random.Random(self.seed)
        ids = sorted(pool)
        drawn = Counter(rng.choice(ids) for _ in range(self.samples))
        self.counts["draws"] = self.samples
        seeds = [(pool[pid], count) for pid, count in sorted(drawn.items())]
        created = self._created(seeds, hooks)
        voted = run_rows(
            self.engine,
            created,
            lambda row: [self._vote_call(row[1])],
            max_pending=self.max_pending,
            on_wait=hooks.on_wait,
        )
        for (seed_problem, question, index), results in voted:
            yield from self._failed
            self._failed.clear()
            yield from self._problem(seed_problem, question, index, results)
        yield from self._failed  # evolution calls that failed for good, with their seed

    def _created(
        self, seeds: list[tuple[Problem, int]], hooks: Hooks
    ) -> Iterator[tuple[Problem, str, int]]:
        sent = run_rows(
            self.engine,
            seeds,
            lambda row: [self._evolve_call(row[0], row[1])],
            max_pending=self.max_pending,
            on_wait=hooks.on_wait,
        )
        for (problem, _), results in sent:
            result = results[0]
            if isinstance(result, RequestFailed):
                self.counts[result.reason] += 1
                self._failed.append(SetAside(result.reason, problem, str(result)))
                continue
            for index, choice in enumerate(result.choices):
                question = created_question(choice.text)
                if question is None or choice.finish_reason == "length":
                    self.counts["unusable"] += 1
                    continue
                self.counts["created"] += 1
                yield problem, question, index

    def _problem(
        self,
        seed: Problem,
        question: str,
        index: int,
        results: list[Generation | RequestFailed],
    ) -> Iterator[Output]:
        assert self.grader is not None
        digest = hashlib.sha256(f"{seed.id}\x1f{self.model}\x1f{question}".encode()).hexdigest()
        problem = Problem(
            id=f"{seed.id}-e{digest[:10]}", task=seed.task, question=question, gold=""
        )
        result = results[0]
        if isinstance(result, RequestFailed):
            self.counts[result.reason] += 1
            yield SetAside(result.reason, problem, str(result))
            return
        voted = _vote(problem, results, self.grader.compare, min_agreement=0.0)
        if isinstance(voted, SetAside) or (voted.gold_vote or {}).get("votes", 0) < 2:
            self.counts["no_agreement"] += 1
            detail = voted.detail if isinstance(voted, SetAside) else "no two answers agree"
            yield SetAside("no_agreement", problem, detail)
            return
        self.counts["written"] += 1
        yield Evolved(voted, seed.id, self.model)

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"evolve: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.requests_summary()}"
