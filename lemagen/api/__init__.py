"""The Python API: every stage as a function over rows held in Python.

Each function takes an iterable of rows (typed records from `lemagen.records`, such as the
`kept` records of the previous stage, or plain dicts in the stage's JSONL shape) and the
command's options as keyword arguments (named as the options are, `--max-tokens` as
`max_tokens`), and returns a `Result`: `kept` records, `rejects` (every row set aside, with its
reason), `counts`, `summary`. Model-calling stages also take the endpoint options (`Endpoint`:
`base_url`, `api_key`, `concurrency`, `cache_dir`, `max_cost`, ...) and go through the same
request engine and request store as the commands, so nothing is paid for twice between a
script and the CLI. The commands build their stages with the same builders
(`lemagen.api.<method>`, e.g. `lemagen.api.lema`).

Works in a script and in a notebook whose event loop is already running: the engine sends
from its own thread. `await asyncio.to_thread(lemagen.sample, ...)` keeps a notebook's loop
free while a long run goes on.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from lemagen.api import art, cotnpot, curate, lema, lemma, mistakes
from lemagen.api.endpoint import Endpoint
from lemagen.api.run import Result, Rows, run
from lemagen.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def _options_of(builder: Callable[..., Any]) -> Callable[[F], F]:
    """Give the function the builder's keyword options in its signature (for `help()` and
    a notebook's completion), after its own `rows` and run parameters; a builder's
    `**endpoint` shows as `Endpoint`'s fields."""

    def decorate(func: F) -> F:
        own = list(inspect.signature(func).parameters.values())
        options = []
        params = inspect.signature(builder).parameters
        for param in params.values():
            if param.kind == param.VAR_KEYWORD:  # the endpoint options the builder lacks
                options += [
                    inspect.Parameter(f.name, param.KEYWORD_ONLY, default=f.default)
                    for f in dataclasses.fields(Endpoint)
                    if f.name not in params
                ]
            else:
                options.append(param)
        signature = inspect.Signature(
            [p for p in own if p.kind != p.VAR_KEYWORD] + options,
            return_annotation="Result",
        )
        known = [name for name in signature.parameters if name != own[0].name]

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for name in kwargs:
                if name not in signature.parameters:
                    raise UsageError(_unknown(func.__name__, name, known))
            return func(*args, **kwargs)

        checked.__signature__ = signature  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def _unknown(function: str, name: str, known: list[str]) -> str:
    """`lemagen.sample() takes no keyword 'keeep' (did you mean 'keep'?)`."""
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else f"; it takes {', '.join(known)}"
    return f"lemagen.{function}() takes no keyword {name!r}{hint}".replace("{", "{{")


@_options_of(lema.sample_stage)
def sample(problems: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Sample chain-of-thought solutions of `problems` (GSM8K, MATH, MATH-500 or any
    question/answer dicts) from `model` (one or a list), grade them, and keep the wrong ones
    (`keep="all"`: every graded sample) as `lemagen.records.Sample`. Truncated samples,
    samples with no answer and failed requests are in `rejects`. Options as `lemagen sample`:
    `n`, `temperature`, `keep`, `thinking`, `gold`, `min_agreement`, `prompt`,
    `explicit_answers_only`, `task`, `question_field`, `answer_field`, `id_field`, and the
    endpoint options (`Endpoint`)."""
    return run(lema.sample_stage(**options), problems, skip_bad_rows=skip_bad_rows)


@_options_of(lema.correct_stage)
def correct(samples: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Ask the corrector `model` to name the incorrect step of each wrong sample, explain it
    and correct the solution: `lemagen.records.Correction` records (unparseable replies too,
    with their `reject_reason`, for `filter` to drop); samples that are not wrong pass
    through. Options as `lemagen correct`: `n`, `temperature`, `prompt`, `reask`, `json_mode`,
    and the endpoint options."""
    return run(lema.correct_stage(**options), samples, skip_bad_rows=skip_bad_rows)


@_options_of(lema.filter_stage)
def filter(  # the command's name; shadows the builtin in this module only
    records: Rows, *, skip_bad_rows: bool = False, **options: Any
) -> Result:
    """Keep the corrections that reach gold and do what they say, as LEMA training records
    (`lemagen.records.PromptCompletion`); every dropped one is in `rejects` with its reason.
    Options as `lemagen filter`: `with_cot`, `with_meta`, `decontaminate` (test-set paths),
    `ngram`, `overlap`, `require_pot_agreement`."""
    return run(lema.filter_stage(**options), records, skip_bad_rows=skip_bad_rows)


@_options_of(curate.grade_stage)
def grade(records: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Grade model outputs made elsewhere: each record (a gold answer and the output in
    `response_field`) with `pred`, `extracted_by` and `verdict` added. Options as
    `lemagen grade`: `response_field`, `check_timeout`, `task`, `question_field`,
    `answer_field`, `id_field`."""
    return run(curate.grade_stage(**options), records, skip_bad_rows=skip_bad_rows)


@_options_of(mistakes.inject_stage)
def inject(problems: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Make mistakes and their corrections from gold step-by-step solutions, offline:
    `Correction` records in `correct`'s shape (`format="retry"`: `RetryText` records);
    problems that cannot be used are in `rejects`. Options as `lemagen inject`: `types`,
    `per_question`, `seed`, `format`, `retry_rate`, `fake`, `marker`, `task`,
    `question_field`, `answer_field`, `id_field`. With a teacher `model`, a model puts a
    mistake of a LEMMA error type (`types`, or drawn by the frequencies in `types_from`, an
    `analyze` output; `question_types` per problem) into a gold step: `prompt`, `temperature`
    and the endpoint options apply."""
    return run(mistakes.inject_stage(**options), problems, skip_bad_rows=skip_bad_rows)


@_options_of(curate.export_stage)
def export(records: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """The kept corrections (exactly as `filter` keeps them) in a trainer's format: `format`
    one of lema, alpaca, sharegpt, openai, openai-dpo, trl, dpo, cot, lemma, prm,
    math-shepherd. Options as
    `lemagen export`: `chat`, `mix`, `gold_cot` (a path or problem rows), `seed`,
    `max_pairs_per_question`, `cross_model`, `keep_fields`, `require_pot_agreement`,
    `restart_rate` (lemma: the share of Fresh & Restart trajectories, default 0.5)."""
    return run(curate.export_stage(**options), records, skip_bad_rows=skip_bad_rows)


@_options_of(lemma.analyze_stage)
def analyze(samples: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Label each wrong sample with its first erroneous step and its error type from LEMMA's
    taxonomy, as the analyser `model` names them (analysis records); replies
    that cannot be read, name an unknown type or a step the sample lacks are in `rejects`;
    other samples pass through. Options as `lemagen analyze`: `temperature`, `prompt`, and the
    endpoint options."""
    return run(lemma.analyze_stage(**options), samples, skip_bad_rows=skip_bad_rows)


@_options_of(lemma.smooth_stage)
def smooth(corrections: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """The LEMMA trajectories `export(format="lemma")` writes (same `seed` and
    `restart_rate`), rewritten fluently by `model`; a rewrite whose answer is no longer gold
    or that lost a number of the kept steps is in `rejects`. Options as `lemagen smooth`:
    `restart_rate`, `temperature`, `prompt`, and the endpoint options."""
    return run(lemma.smooth_stage(**options), corrections, skip_bad_rows=skip_bad_rows)


@_options_of(art.art_ask_stage)
def art_ask(samples: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """ART Asker records from graded samples (`sample(keep="all")`): each problem's
    sub-questions, written by `model`, and whether the prediction answers them all. Options
    as `lemagen art ask`: `temperature`, `prompt`, and the endpoint options."""
    return run(art.art_ask_stage(**options), samples, skip_bad_rows=skip_bad_rows)


@_options_of(art.art_trust_stage)
def art_trust(corrections: Rows, *, skip_bad_rows: bool = False) -> Result:
    """ART Truster records from corrections (`correct` or `inject`): the initial and refined
    predictions and the one to trust; pairs where both or neither reach gold are in
    `rejects` (no_preference). No model is called (`lemagen art trust`)."""
    return run(art.art_trust_stage(), corrections, skip_bad_rows=skip_bad_rows)


@_options_of(curate.stats_stage)
def stats(records: Rows, *, skip_bad_rows: bool = False, **options: Any) -> dict[str, Any]:
    """The report of `lemagen stats --json` over any stages' records, as a plain dict:
    funnel, accuracy per reasoner, incorrect-step positions, drop reasons, tokens and cost.
    `by` breaks the funnel down by a problem field."""
    stage = curate.stats_stage(**options)
    run(stage, records, skip_bad_rows=skip_bad_rows)
    return stage.report().to_dict()


@_options_of(lema.evolve_stage)
def evolve(corrections: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """New problems from the questions of the corrections `filter` keeps (LEMA's
    evolution), each with a pseudo-gold voted by `votes` answers: `lemagen.records.Evolved`.
    Options as `lemagen evolve`: `model`, `samples`, `votes`, `temperature`, `prompt`,
    `answer_prompt`, and the endpoint options (`seed` seeds the draws)."""
    return run(lema.evolve_stage(**options), corrections, skip_bad_rows=skip_bad_rows)


@_options_of(cotnpot.crosscheck_stage)
def crosscheck(records: Rows, *, skip_bad_rows: bool = False, **options: Any) -> Result:
    """Cross-check chains of thought with programs a coder `model` writes, run in the
    bubblewrap sandbox (Linux, `bwrap` on PATH): records gain their `pot` verdict. Options as
    `lemagen crosscheck`: `temperature`, `prompt`, `check_all`, `program_timeout`,
    `program_memory`, and the endpoint options."""
    return run(cotnpot.crosscheck_stage(**options), records, skip_bad_rows=skip_bad_rows)


__all__ = [
    "Endpoint",
    "Result",
    "Rows",
    "analyze",
    "art_ask",
    "art_trust",
    "correct",
    "crosscheck",
    "evolve",
    "export",
    "filter",
    "grade",
    "inject",
    "run",
    "sample",
    "smooth",
    "stats",
]
