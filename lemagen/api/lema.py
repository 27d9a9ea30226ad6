"""The builders of LEMA's stages (`lemagen.lema`): sample, correct, evolve, filter: each stage
built from plain keyword options, shared by its command (`lemagen.cli`) and its API function
(`lemagen.api`), so a script and a command given the same options send the same requests and
write the same records. Model-calling builders take the endpoint options (`Endpoint`'s fields)
as further keywords.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lemagen.api.endpoint import Endpoint
from lemagen.curate.decontam import DEFAULT_NGRAM, DEFAULT_OVERLAP, HeldOut
from lemagen.records.problems import ProblemReader

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.lema.correct import CorrectStage
    from lemagen.lema.evolve import EvolveStage
    from lemagen.lema.filter import FilterStage
    from lemagen.lema.sample import SampleStage
from lemagen.api.options import checked_choice, model_list, template


def sample_stage(
    *,
    model: str | Sequence[str],
    n: int = 4,
    temperature: float = 0.7,
    keep: str = "wrong",
    thinking: str = "keep",
    gold: str = "given",
    min_agreement: float = 0.5,
    prompt: str = "sample",
    explicit_answers_only: bool = False,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    **endpoint: Any,
) -> SampleStage:
    """`lemagen sample`: `model` is one reasoner or several."""
    from lemagen.lema.sample import SAMPLE_VARIABLES, SampleStage

    models = model_list(model)
    calls = Endpoint(**endpoint)
    return SampleStage(
        ProblemReader(
            task,
            question_field,
            answer_field,
            id_field=id_field,
            gold_optional=checked_choice("gold", gold, ("given", "vote")) == "vote",
        ),
        calls.engine_config(models),
        template=template(prompt, SAMPLE_VARIABLES),
        models=models,
        n=n,
        sampling=calls.sampling(temperature),
        keep_all=checked_choice("keep", keep, ("wrong", "all")) == "all",
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
        thinking=checked_choice("thinking", thinking, ("keep", "drop", "steps")),
        min_agreement=min_agreement,
        explicit_only=explicit_answers_only,
    )


def correct_stage(
    *,
    model: str,
    n: int = 1,
    temperature: float = 0.0,
    prompt: str | None = None,
    reask: int = 0,
    json_mode: bool = False,
    **endpoint: Any,
) -> CorrectStage:
    """`lemagen correct`: `prompt` None picks correct.gsm8k or correct.math by task."""
    from lemagen.lema.correct import CorrectStage

    calls = Endpoint(**endpoint)
    return CorrectStage(
        calls.engine_config(model_list(model)),
        model=model,
        prompt_name=prompt,
        n=n,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        reask=reask,
        json_mode=json_mode,
        request=calls.request_shape(),
    )


def evolve_stage(
    *,
    model: str,
    samples: int = 100,
    votes: int = 3,
    temperature: float = 0.7,
    prompt: str = "evolve",
    answer_prompt: str = "sample",
    **endpoint: Any,
) -> EvolveStage:
    """`lemagen evolve`: draws are seeded by the endpoint option `seed` (None: 0)."""
    from lemagen.lema.evolve import EVOLVE_VARIABLES, EvolveStage
    from lemagen.lema.sample import SAMPLE_VARIABLES

    calls = Endpoint(**endpoint)
    return EvolveStage(
        calls.engine_config(model_list(model)),
        model=model,
        template=template(prompt, EVOLVE_VARIABLES),
        answer_template=template(answer_prompt, SAMPLE_VARIABLES),
        samples=samples,
        votes=votes,
        seed=calls.seed or 0,
        sampling=calls.sampling(temperature),
        vote_sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def filter_stage(
    *,
    with_cot: bool = False,
    with_meta: bool = False,
    decontaminate: Sequence[str] = (),
    ngram: int = DEFAULT_NGRAM,
    overlap: float = DEFAULT_OVERLAP,
    require_pot_agreement: bool = False,
) -> FilterStage:
    """`lemagen filter`: `decontaminate` lists test-set JSONL paths."""
    from lemagen.lema.filter import FilterStage

    held_out = None
    if decontaminate:
        held_out = HeldOut(ngram, overlap)
        for path in decontaminate:
            held_out.load(path)
    return FilterStage(
        with_cot=with_cot,
        with_meta=with_meta,
        held_out=held_out,
        require_pot=require_pot_agreement,
    )
