"""`lemagen export`: the kept corrections (and correct samples) in every trainer's format.

Input is `lemagen correct` (or `inject`) output, optionally with `sample --keep all` output:
corrections are kept exactly as `lemagen filter` keeps them; correct samples feed the CoT part of
`--mix` and the chosen side of preference pairs; wrong samples (and the originals inside
corrections) the rejected side.

Formats (each validated in tests against its target's documented schema):
* `lema`       {"prompt", "completion"} (methods.md §1.7, what `filter` writes)
* `alpaca`     {"instruction", "input", "output"} (LLaMA-Factory alpaca)
* `sharegpt`   {"conversations": [{"from": "human"|"gpt", "value"}]} (LLaMA-Factory sharegpt)
* `openai`     {"messages": [user, assistant]} (OpenAI supervised fine-tuning)
* `openai-dpo` {"input": {"messages"}, "preferred_output", "non_preferred_output"} (OpenAI DPO)
* `trl`        {"prompt", "completion"}, or {"messages"} with --chat (TRL SFTTrainer)
* `dpo`        {"prompt", "chosen", "rejected"} (TRL DPOTrainer / SimPO / CPO)
* `cot`        the full corrected chain of thought as a LEMA CoT record
* `lemma`      a LEMMA trajectory, Fix & Continue or Fresh & Restart (`trajectories`), alpaca
* `prm`        {"prompt", "completions", "labels"} (TRL stepwise supervision, `step_labels`)
* `math-shepherd` {"input", "label", "task"} (Math-Shepherd's step tags, `step_labels`)
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lemagen.curate.step_labels import STEP_FORMATS, step_row, wrong_prefix
from lemagen.errors import LemagenError
from lemagen.lema.filter import Keep, pot_reason, unparseable_detail
from lemagen.lema.formats import cot_prompt, cot_text, lema_correction, lema_cot
from lemagen.lema.gold_cot import gold_cot
from lemagen.lemma.trajectories import trajectory
from lemagen.records import (
    Alpaca,
    Conversation,
    Correction,
    Preference,
    Problem,
    ProblemFields,
    PromptCompletion,
    Sample,
    Tagged,
    TrainingRow,
    fast,
    read_sample_or_correction,
)
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import Hooks, Output, Stage, by_reason
from lemagen.terms import Reason

FORMATS = (
    "lema",
    "alpaca",
    "sharegpt",
    "openai",
    "openai-dpo",
    "trl",
    "dpo",
    "cot",
    "lemma",
    *STEP_FORMATS,
)
PAIR_FORMATS = ("dpo", "openai-dpo")
ALPACA_SHAPED = ("alpaca", "lemma")
DATASET_INFO_FORMATS = ("alpaca", "sharegpt", "lemma")


def sft_row(fmt: str, prompt: str, completion: str, chat: bool) -> TrainingRow:
    """One prompt/completion pair in an SFT format. The LEMA completion starts with a space (it
    continues `Incorrect Step:`); chat-shaped formats drop it."""
    reply = completion.lstrip()
    if fmt == "lema" or (fmt == "trl" and not chat) or fmt == "cot":
        return PromptCompletion(prompt, completion)
    if fmt in ALPACA_SHAPED:
        return Alpaca(instruction=prompt, output=reply)
    return Conversation(prompt, reply, sharegpt=fmt == "sharegpt")  # openai, trl --chat


@dataclass
class _Question:
    prompt: str
    problem: ProblemFields  # the first record of the question
    chosen: list[str] = field(default_factory=list)  # correct samples' chains of thought
    rejected: list[str] = field(default_factory=list)  # wrong samples' chains of thought
    chosen_models: list[str | None] = field(default_factory=list)  # the model of each
    rejected_models: list[str | None] = field(default_factory=list)
    fixes: list[tuple[str, str]] = field(default_factory=list)  # (corrected, its original)


class ExportStage(Stage[Sample | Correction]):
    """Kept corrections (exactly as `filter` keeps them) in a trainer's format; with `mix`,
    shuffled with CoT records of the correct samples; for pair formats, preference pairs."""

    name = "export"

    def __init__(
        self,
        fmt: str,
        *,
        chat: bool = False,
        mix: bool = False,
        seed: int = 0,
        max_pairs: int = 8,
        keep_fields: tuple[str, ...] = (),
        gold_cot: Iterable[Problem] | None = None,
        cross_model: bool = False,
        require_pot: bool = False,
        restart_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.restart_rate = restart_rate
        self.fmt = fmt
        self.keep_fields = keep_fields
        self.gold_cot = gold_cot
        self.cross_model = cross_model
        self.chat = chat
        self.mix = mix
        self.seed = seed
        self.max_pairs = max_pairs
        self.made: dict[str, int] = {}
        self.require_pot = require_pot
        self._keep = Keep(with_cot=True, require_pot=require_pot)
        self._held: list[TrainingRow | Tagged] = []
        self._questions: dict[str, _Question] = {}
        self._seen_samples: set[str] = set()
        self._solutions: set[str] = set()  # step formats: corrected solutions written
        self._written: set[str] = set()  # every training row made, as its repr

    def read(self, data: dict[str, Any], where: str) -> Sample | Correction:
        return read_sample_or_correction(data, where)

    def read_fast(self, raw: bytes) -> Sample | Correction:
        return fast.sample_or_correction(raw)

    def run(self, rows: Iterable[Sample | Correction], hooks: Hooks) -> Iterator[Output]:
        for record in rows:
            hooks.on_row(1)
            made, reason = self.add(record)
            for row in made:
                self.counts["written"] += 1
                yield row
            if reason is not None:
                yield SetAside(reason, record, unparseable_detail(record, reason))

    def add(self, record: Sample | Correction) -> tuple[list[TrainingRow | Tagged], Reason | None]:
        """Records to write now, and the drop reason when this input record yields nothing."""
        out, reason = self._keep(record)  # applies filter's checks, dedupes
        if self.fmt in PAIR_FORMATS:
            self._collect(record, kept=out is not None)
            return [], reason if isinstance(record, Correction) else None
        if out is None:
            return [], reason
        if self.fmt in STEP_FORMATS:
            rows = self._fresh([self._tag(row, p) for row, p in self._step_rows(record)])
            return self._hold(rows), None if rows else "duplicate"
        if isinstance(record, Sample):  # a correct sample: CoT data, only with --mix
            if not self.mix:
                return [], "correct_sample"
            row, kind = self._sft_cot(record), "sample"
        else:
            row, kind = self._sft_correction(record), "correction"
        if not self._fresh([row]):
            return [], "duplicate"  # `-f cot`: another correction of the question, same fix
        self.made[kind] = self.made.get(kind, 0) + 1
        tagged = self._tag(row, record)
        if self.mix:
            self._held.append(tagged)
            return [], None
        return [tagged], None

    def _fresh(self, rows: list[TrainingRow | Tagged]) -> list[TrainingRow | Tagged]:
        """The rows not written before (a training row is written once, whatever made it)."""
        out = []
        for row in rows:
            key = repr(row.row if isinstance(row, Tagged) else row)
            if key not in self._written:
                self._written.add(key)
                out.append(row)
        return out

    def _hold(self, rows: list[TrainingRow | Tagged]) -> list[TrainingRow | Tagged]:
        """Rows to write now, or none when --mix holds them for the shuffle."""
        if not self.mix:
            return rows
        self._held += rows
        return []

    def _step_rows(self, record: Sample | Correction) -> list[tuple[TrainingRow, ProblemFields]]:
        """Step-labelled rows: a kept correction's original through its incorrect step; and
        a correct solution (a correct sample, a kept correction's whole corrected solution)
        good at every step, once per question and solution."""
        out: list[tuple[TrainingRow, ProblemFields]] = []
        if isinstance(record, Sample):
            problem: ProblemFields = record
            solution = list(record.steps)
        else:
            problem, solution = record, record.full_solution()
            steps, labels = wrong_prefix(record.original.steps, record.incorrect_step or 1)
            out.append((step_row(self.fmt, problem.task, problem.question, steps, labels), problem))
            self.made["mistake"] = self.made.get("mistake", 0) + 1
        key = "\x1f".join([problem.id, *solution])
        if key not in self._solutions:
            self._solutions.add(key)
            good = [True] * len(solution)
            row = step_row(self.fmt, problem.task, problem.question, solution, good)
            out.append((row, problem))
            self.made["correct"] = self.made.get("correct", 0) + 1
        return out

    def _sft_correction(self, record: Correction) -> TrainingRow:
        if self.fmt == "cot":
            return PromptCompletion(
                cot_prompt(record.question), cot_text(record.task, record.full_solution())
            )
        if self.fmt == "lemma":
            made = trajectory(record, self.seed, self.restart_rate)
            self.made[made.kind] = self.made.get(made.kind, 0) + 1
            return sft_row("lemma", record.question, made.text, False)
        lema = lema_correction(record)
        return sft_row(self.fmt, lema.prompt, lema.completion, self.chat)

    def _tag(self, row: TrainingRow, problem: ProblemFields) -> TrainingRow | Tagged:
        if not self.keep_fields:
            return row
        return Tagged(row, {name: problem.field(name) for name in self.keep_fields})

    def _sft_cot(self, record: Sample) -> TrainingRow:
        cot = lema_cot(record)
        if self.fmt == "lemma":
            return sft_row("lemma", record.question, cot.completion, False)
        return sft_row(self.fmt, cot.prompt, cot.completion, self.chat)

    def _collect(self, record: Sample | Correction, kept: bool) -> None:
        question = self._questions.get(record.id)
        if question is None:
            question = _Question(cot_prompt(record.question), record)
            self._questions[record.id] = question
        task = record.task
        if isinstance(record, Sample):
            text = cot_text(task, record.steps)
            sample_id = record.sample_id or ""
            if record.verdict == "correct":
                if not (self.require_pot and pot_reason(record)):
                    question.chosen.append(text)
                    question.chosen_models.append(record.meta.model)
            elif record.verdict == "wrong" and sample_id not in self._seen_samples:
                question.rejected.append(text)
                question.rejected_models.append(record.meta.model)
            self._seen_samples.add(sample_id)
            return
        wrong = cot_text(task, record.original.steps)
        if record.sample_id not in self._seen_samples:
            self._seen_samples.add(record.sample_id)
            question.rejected.append(wrong)
            question.rejected_models.append(record.original.meta.model)
        if kept:
            question.fixes.append((cot_text(task, record.full_solution()), wrong))

    def finish(self) -> Iterator[Output]:
        """What waits for the whole input: the gold CoT records, the shuffled --mix, or the
        preference pairs."""
        for problem in self.gold_cot or ():
            record = gold_cot(problem)
            if record is None:
                yield SetAside("no_gold_solution", problem)
                continue
            self.made["gold_cot"] = self.made.get("gold_cot", 0) + 1
            row = self._tag(sft_row(self.fmt, record.prompt, record.completion, self.chat), problem)
            if self.mix:
                self._held.append(row)
            else:
                self.counts["written"] += 1
                yield row
        if self.mix:
            random.Random(self.seed).shuffle(self._held)
            for row in self._held:
                self.counts["written"] += 1
                yield row
            self._held = []
        if self.fmt in PAIR_FORMATS:
            for qid, question in self._questions.items():
                for chosen, rejected in self._pairs(qid, question):
                    self.made["pairs"] = self.made.get("pairs", 0) + 1
                    self.counts["written"] += 1
                    pair = Preference(question.prompt, chosen, rejected, openai=self.fmt != "dpo")
                    yield self._tag(pair, question.problem)

    def _pairs(self, qid: str, question: _Question) -> list[tuple[str, str]]:
        """Each kept correction against its own original first, then each wrong sample against
        a correct sample of the same question (seeded), at most --max-pairs-per-question."""
        rng = random.Random(f"{self.seed}\x1f{qid}")
        pairs: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        candidates = list(question.fixes)
        if self.cross_model:  # Math-Rev: a correct and a wrong solution of different models
            for wrong, model in zip(question.rejected, question.rejected_models, strict=True):
                pool = [
                    text
                    for text, other in zip(question.chosen, question.chosen_models, strict=True)
                    if other != model
                ]
                if pool:
                    candidates.append((rng.choice(pool), wrong))
        elif question.chosen:
            candidates += [(rng.choice(question.chosen), wrong) for wrong in question.rejected]
        for chosen, rejected in candidates:
            if chosen == rejected or (chosen, rejected) in seen:
                continue
            seen.add((chosen, rejected))
            pairs.append((chosen, rejected))
            if len(pairs) >= self.max_pairs:
                break
        return pairs

    def summary(self, rejects: Rejects) -> str:
        made = ", ".join(f"{k} {v}" for k, v in sorted(self.made.items())) or "nothing"
        return (
            f"export --format {self.fmt}: {self.counts['written']} written ({made}); "
            f"dropped {by_reason(rejects.counts)}"
        )


def dataset_info_entry(fmt: str, file_name: str) -> dict[str, Any]:
    """LLaMA-Factory's `dataset_info.json` entry for a file written by `export`."""
    if fmt == "sharegpt":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
            },
        }
    return {
        "file_name": file_name,
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }


def write_dataset_info(path: str, name: str | None, output: str, fmt: str) -> None:
    """Add (or replace) the entry for `output` in LLaMA-Factory's `dataset_info.json`."""
    info_path = Path(path)
    entries: dict[str, Any] = {}
    if info_path.exists():
        try:
            entries = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LemagenError(f"{path}: cannot read as JSON: {exc}") from None
        if not isinstance(entries, dict):
            raise LemagenError(f"{path}: not a JSON object")
    data = Path(output).resolve()
    file_name = os.path.relpath(data, info_path.resolve().parent)
    entries[name or data.stem] = dataset_info_entry(fmt, file_name)
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
