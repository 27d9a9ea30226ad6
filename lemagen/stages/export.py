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
* `lemma`      a LEMMA Fix & Continue trajectory, alpaca-shaped (methods.md §2.4)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lemagen.stages.correct import ParsedReply, full_solution
from lemagen.stages.filter import Filter
from lemagen.stages.formats import LEMA_COT_PROMPT, cot_text, lema_correction, lema_cot

FORMATS = ("lema", "alpaca", "sharegpt", "openai", "openai-dpo", "trl", "dpo", "cot", "lemma")
PAIR_FORMATS = ("dpo", "openai-dpo")
ALPACA_SHAPED = ("alpaca", "lemma")

# Our own transition phrases for Fix & Continue trajectories (LEMMA's idea, our wording).
TRANSITIONS = (
    "Hold on, that step does not look right. Let me check it again.",
    "Wait, I should double-check that last step.",
    "Hmm, let me go back over that calculation.",
    "Let me pause and verify the step I just wrote.",
    "Actually, that does not add up. Let me redo it carefully.",
    "One moment: I want to make sure that step is correct.",
    "Let me look at that again before going on.",
    "That result seems off. Let me recheck the work.",
    "Before continuing, let me verify what I just did.",
    "Wait, something went wrong there. Let me fix it.",
    "I think I made a slip in that step. Let me reconsider.",
    "Let me re-examine that step more carefully.",
)


def full_corrected(record: dict[str, Any]) -> list[str]:
    """Original steps before the first corrected one, then the corrected steps."""
    parsed = ParsedReply(
        incorrect_step=record["incorrect_step"],
        corrected_from=record.get("corrected_from"),
        corrected_steps=record["corrected_steps"],
        elided=bool(record.get("elided")),
    )
    return full_solution(record["original"]["steps"], parsed)


def lemma_output(record: dict[str, Any], phrase: str) -> str:
    """The wrong prefix through the incorrect step, a transition, the explanation, the fix."""
    k = record["incorrect_step"]
    original = record["original"]["steps"]
    fixed = full_corrected(record)[k - 1 :]
    sep = " " if record["task"] == "gsm8k" else "\n"
    explanation = (record.get("explanation") or "").strip()
    middle = f"{phrase} {explanation}".strip()
    return sep.join([*original[:k], middle, *fixed])


def _sft(fmt: str, prompt: str, completion: str, chat: bool) -> dict[str, Any]:
    """One prompt/completion pair in an SFT format. The LEMA completion starts with a space (it
    continues `Incorrect Step:`); chat-shaped formats drop it."""
    reply = completion.lstrip()
    if fmt == "lema" or (fmt == "trl" and not chat) or fmt == "cot":
        return {"prompt": prompt, "completion": completion}
    if fmt in ALPACA_SHAPED:
        return {"instruction": prompt, "input": "", "output": reply}
    if fmt == "sharegpt":
        return {
            "conversations": [
                {"from": "human", "value": prompt},
                {"from": "gpt", "value": reply},
            ]
        }
    # openai, trl --chat
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": reply},
        ]
    }


def _pair(fmt: str, prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
    if fmt == "dpo":
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    return {
        "input": {"messages": [{"role": "user", "content": prompt}]},
        "preferred_output": [{"role": "assistant", "content": chosen}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


@dataclass
class _Question:
    prompt: str
    chosen: list[str] = field(default_factory=list)  # correct samples' chains of thought
    rejected: list[str] = field(default_factory=list)  # wrong samples' chains of thought
    fixes: list[tuple[str, str]] = field(default_factory=list)  # (corrected, its original)


@dataclass
class Exporter:
    fmt: str
    chat: bool = False
    mix: bool = False
    seed: int = 0
    max_pairs: int = 8
    counts: Counter[str] = field(default_factory=Counter)
    _filter: Filter = field(default_factory=lambda: Filter(with_cot=True))
    _held: list[dict[str, Any]] = field(default_factory=list)
    _questions: dict[str, _Question] = field(default_factory=dict)
    _seen_samples: set[str] = field(default_factory=set)

    def add(self, record: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], str | None]:
        """Records to write now, and the drop reason when this input record yields nothing."""
        out, reason = self._filter(record, where)  # validates fields, dedupes, applies checks
        kind = "correction" if "correction_id" in record else "sample"
        if self.fmt in PAIR_FORMATS:
            self._collect(record, kind, kept=out is not None)
            return [], reason if kind == "correction" else None
        if out is None:
            return [], reason
        if kind == "sample":  # a correct sample: CoT data, only with --mix
            if not self.mix:
                return [], "correct_sample"
            made = [self._sft_cot(record)]
        elif self.fmt == "cot":
            made = [
                {
                    "prompt": LEMA_COT_PROMPT.format(question=record["question"]),
                    "completion": cot_text(record["task"], full_corrected(record)),
                }
            ]
        elif self.fmt == "lemma":
            rng = random.Random(f"{self.seed}\x1f{record['correction_id']}")
            output = lemma_output(record, rng.choice(TRANSITIONS))
            made = [_sft("lemma", record["question"], output, False)]
        else:
            lema = lema_correction(record)
            made = [_sft(self.fmt, lema["prompt"], lema["completion"], self.chat)]
        self.counts[kind] += 1
        if self.mix:
            self._held.extend(made)
            return [], None
        return made, None

    def _sft_cot(self, record: dict[str, Any]) -> dict[str, Any]:
        cot = lema_cot(record)
        if self.fmt == "lemma":
            return _sft("lemma", record["question"], cot["completion"], False)
        return _sft(self.fmt, cot["prompt"], cot["completion"], self.chat)

    def _collect(self, record: dict[str, Any], kind: str, kept: bool) -> None:
        question = self._questions.get(record["id"])
        if question is None:
            question = _Question(LEMA_COT_PROMPT.format(question=record["question"]))
            self._questions[record["id"]] = question
        task = record["task"]
        if kind == "sample":
            text = cot_text(task, record["steps"])
            if record["verdict"] == "correct":
                question.chosen.append(text)
            elif record["verdict"] == "wrong" and record["sample_id"] not in self._seen_samples:
                question.rejected.append(text)
            self._seen_samples.add(record["sample_id"])
            return
        original = record["original"]
        wrong = cot_text(task, original["steps"])
        if record["sample_id"] not in self._seen_samples:
            self._seen_samples.add(record["sample_id"])
            question.rejected.append(wrong)
        if kept:
            question.fixes.append((cot_text(task, full_corrected(record)), wrong))

    def finish(self) -> Iterator[dict[str, Any]]:
        """What waits for the whole input: the shuffled --mix, or the preference pairs."""
        if self.mix:
            random.Random(self.seed).shuffle(self._held)
            yield from self._held
            self._held = []
        if self.fmt in PAIR_FORMATS:
            for qid, question in self._questions.items():
                for chosen, rejected in self._pairs(qid, question):
                    self.counts["pairs"] += 1
                    yield _pair(self.fmt, question.prompt, chosen, rejected)

    def _pairs(self, qid: str, question: _Question) -> list[tuple[str, str]]:
        """Each kept correction against its own original first, then each wrong sample against
        a correct sample of the same question (seeded), at most --max-pairs-per-question."""
        rng = random.Random(f"{self.seed}\x1f{qid}")
        pairs: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        candidates = list(question.fixes)
        if question.chosen:
            candidates += [(rng.choice(question.chosen), wrong) for wrong in question.rejected]
        for chosen, rejected in candidates:
            if chosen == rejected or (chosen, rejected) in seen:
                continue
            seen.add((chosen, rejected))
            pairs.append((chosen, rejected))
            if len(pairs) >= self.max_pairs:
                break
        return pairs


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
