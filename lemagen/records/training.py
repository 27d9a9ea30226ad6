"""Training rows: what `filter` and `export` write, in each trainer's documented shape. A row
whose JSON is its fields is a `Shape` (read and written from its declaration, keys a user added
kept); `Conversation` and `Preference` write one of two shapes each, by a flag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import msgspec

from lemagen.errors import InputError
from lemagen.records.common import JSON, check
from lemagen.records.shape import Shape, WhenSet


class PromptCompletion(Shape, frozen=True):
    """LEMA's (and TRL's standard) `{"prompt", "completion"}` row; `filter --with-meta` adds
    the problem id and the kind (correction or cot)."""

    prompt: str
    completion: str
    id: WhenSet[str | None] = None
    kind: WhenSet[str | None] = None


class Alpaca(Shape, frozen=True, kw_only=True):
    """LLaMA-Factory's alpaca row."""

    instruction: str
    input: str = ""
    output: str


class Conversation(msgspec.Struct, frozen=True):
    """One user turn and one assistant turn, as ShareGPT (`conversations` of from/value) or as
    chat `messages` (OpenAI fine-tuning, TRL conversational)."""

    user: str
    assistant: str
    sharegpt: bool = False

    def to_dict(self) -> JSON:
        if self.sharegpt:
            return {
                "conversations": [
                    {"from": "human", "value": self.user},
                    {"from": "gpt", "value": self.assistant},
                ]
            }
        return {
            "messages": [
                {"role": "user", "content": self.user},
                {"role": "assistant", "content": self.assistant},
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Conversation:
        sharegpt = "conversations" in data
        turns = data.get("conversations" if sharegpt else "messages")
        text = "value" if sharegpt else "content"
        if (
            not isinstance(turns, list)
            or len(turns) != 2
            or not all(isinstance(t, dict) and isinstance(t.get(text), str) for t in turns)
        ):
            raise InputError(f"{where}: expected two turns, each an object with text")
        return cls(turns[0][text], turns[1][text], sharegpt)


class Preference(msgspec.Struct, frozen=True):
    """A preference pair: TRL's `{"prompt", "chosen", "rejected"}` (DPO, CPO/SimPO), or with
    `openai` OpenAI's DPO shape."""

    prompt: str
    chosen: str
    rejected: str
    openai: bool = False

    def to_dict(self) -> JSON:
        if not self.openai:
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {
            "input": {"messages": [{"role": "user", "content": self.prompt}]},
            "preferred_output": [{"role": "assistant", "content": self.chosen}],
            "non_preferred_output": [{"role": "assistant", "content": self.rejected}],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Preference:
        if "input" not in data:
            # `openai` says which shape it is, not a key of TRL's
            return check({k: v for k, v in data.items() if k != "openai"}, cls, where)
        try:
            return cls(
                data["input"]["messages"][0]["content"],
                data["preferred_output"][0]["content"],
                data["non_preferred_output"][0]["content"],
                openai=True,
            )
        except (KeyError, IndexError, TypeError):
            raise InputError(f"{where}: not an OpenAI DPO row") from None


class StepLabels(Shape, frozen=True):
    """TRL's stepwise-supervision row (`PRMTrainer`): the steps of a solution as
    `completions`, and a label per step (true: correct so far, false: the first incorrect
    one; a wrong solution stops at that step)."""

    prompt: str
    completions: tuple[str, ...]
    labels: tuple[bool, ...]

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str, *, prefix: str = "", hint: str = ""
    ) -> StepLabels:
        row = super().from_dict(data, where, prefix=prefix, hint=hint)
        if len(row.completions) != len(row.labels):
            raise InputError(f"{where}: 'completions' and 'labels' differ in length")
        return row


class ShepherdRow(Shape, frozen=True):
    """Math-Shepherd's row: `input` is the question and the `Step k: ...` lines, each ending
    with the step tag ` ки`; `label` is the same text with each tag replaced by `+` (a good
    step) or `-` (a bad one); `task` is `GSM8K` or `MATH`."""

    input: str
    label: str
    task: str


TrainingRow: TypeAlias = (
    PromptCompletion | Alpaca | Conversation | Preference | StepLabels | ShepherdRow
)


class Tagged(msgspec.Struct, frozen=True):
    """A training row with fields of its problem beside the format's own (`export
    --keep-fields`): trainers ignore the extra columns, users can filter and balance by them."""

    row: TrainingRow
    fields: dict[str, Any]

    def to_dict(self) -> JSON:
        out = self.row.to_dict()
        for key, value in self.fields.items():
            out.setdefault(key, value)
        return out


TRAINING_FIELDS = ("prompt", "messages", "instruction", "conversations", "input", "completions")


def read_training(data: Mapping[str, Any], where: str) -> TrainingRow:
    if "instruction" in data:
        return Alpaca.from_dict(data, where)
    if "conversations" in data or "messages" in data:
        return Conversation.from_dict(data, where)
    if "chosen" in data or "preferred_output" in data:
        return Preference.from_dict(data, where)
    if "completions" in data:
        return StepLabels.from_dict(data, where)
    if "label" in data and "input" in data:
        return ShepherdRow.from_dict(data, where)
    return PromptCompletion.from_dict(data, where)
