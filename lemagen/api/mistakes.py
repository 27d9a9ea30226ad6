"""The builders of `inject` (`lemagen.mistakes`, and LEMMA's teacher with --model): each stage
built from plain keyword options, shared by its command (`lemagen.cli`) and its API function
(`lemagen.api`), so a script and a command given the same options send the same requests and
write the same records. Model-calling builders take the endpoint options (`Endpoint`'s fields)
as further keywords.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lemagen.api.endpoint import Endpoint
from lemagen.errors import UsageError
from lemagen.mistakes.retry import DEFAULT_MARKER, DEFAULT_RETRY_RATE, RetryOptions
from lemagen.records import TAXONOMY_IDS
from lemagen.records.analysis import error_type_counts
from lemagen.records.problems import ProblemReader

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.lemma.teacher import TeachStage
    from lemagen.mistakes.inject import InjectStage
from lemagen.api.options import checked_choice, template


def inject_stage(
    *,
    types: Sequence[str] | None = None,
    per_question: int = 1,
    seed: int = 0,
    format: str = "lema",  # the option's own name
    retry_rate: float = DEFAULT_RETRY_RATE,
    fake: bool = False,
    marker: str = DEFAULT_MARKER,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    model: str | None = None,
    types_from: str | None = None,
    question_types: bool = False,
    prompt: str = "inject",
    temperature: float = 0.7,
    **endpoint: Any,
) -> InjectStage | TeachStage:
    """`lemagen inject`. Offline (no `model`): `types` from calculation, copy, operator, skip
    [default: calculation, copy, operator]. With a teacher `model`: `types` of LEMMA's
    taxonomy, or `types_from` a `lemagen analyze` output to draw them by frequency
    (`question_types`: per problem); the endpoint options apply (`seed` is the draws')."""
    from lemagen.mistakes.gsm8k import DEFAULT_TYPES, ERROR_TYPES
    from lemagen.mistakes.inject import InjectStage

    reader = ProblemReader(task, question_field, answer_field, id_field=id_field)
    if model is not None:
        return _teacher(
            model,
            tuple(types or ()),
            types_from,
            question_types,
            prompt,
            per_question,
            seed,
            format,
            reader,
            temperature,
            endpoint,
        )
    if endpoint or types_from is not None or question_types:
        given = [*endpoint, *(["types_from"] if types_from else [])]
        given += ["question_types"] if question_types else []
        names = ", ".join("{" + name + "}" for name in given)
        raise UsageError(f"{names}: only with {{model}} (a teacher)")
    chosen = DEFAULT_TYPES if types is None else tuple(types)
    for name in chosen:
        checked_choice("types", name, ERROR_TYPES)
    return InjectStage(
        reader,
        fmt=checked_choice("format", format, ("lema", "retry")),
        types=chosen,
        per_question=per_question,
        seed=seed,
        retry=RetryOptions(rate=retry_rate, fake=fake, marker=marker),
    )


def _teacher(
    model: str,
    types: tuple[str, ...],
    types_from: str | None,
    question_types: bool,
    prompt: str,
    per_question: int,
    seed: int,
    fmt: str,
    reader: ProblemReader,
    temperature: float,
    endpoint: dict[str, Any],
) -> TeachStage:
    from lemagen.lemma.teacher import TEACH_VARIABLES, TeachStage, TypeDraw

    if fmt != "lema":
        raise UsageError("{model} writes corrections: {format} retry is offline only")
    if bool(types) == bool(types_from):
        raise UsageError("{model} needs {types} or {types_from} (one of them)")
    if question_types and not types_from:
        raise UsageError("{question_types} needs {types_from}")
    for name in types:
        checked_choice("types", name, TAXONOMY_IDS)
    by_problem = error_type_counts(types_from) if types_from else {}
    weights = sum(by_problem.values(), Counter()) if types_from else Counter(types)
    calls = Endpoint(**endpoint)
    return TeachStage(
        calls.engine_config([model]),
        reader=reader,
        model=model,
        template=template(prompt, TEACH_VARIABLES),
        types=TypeDraw(weights, by_problem if question_types else None),
        per_question=per_question,
        seed=seed,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )
