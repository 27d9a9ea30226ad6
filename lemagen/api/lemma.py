"""The builders of LEMMA's stages (`lemagen.lemma`): analyze, smooth: each stage built from plain
keyword options, shared by its command (`lemagen.cli`) and its API function (`lemagen.api`), so
a script and a command given the same options send the same requests and write the same records.
Model-calling builders take the endpoint options (`Endpoint`'s fields) as further keywords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lemagen.api.endpoint import Endpoint
from lemagen.lemma.trajectories import DEFAULT_RESTART_RATE

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.lemma.analyze import AnalyzeStage
    from lemagen.lemma.smooth import SmoothStage
from lemagen.api.options import template


def analyze_stage(
    *, model: str, temperature: float = 0.0, prompt: str = "analyze", **endpoint: Any
) -> AnalyzeStage:
    """`lemagen analyze`: the first erroneous step and its LEMMA error type per wrong sample."""
    from lemagen.lemma.analyze import ANALYZE_VARIABLES, AnalyzeStage

    calls = Endpoint(**endpoint)
    return AnalyzeStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, ANALYZE_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def smooth_stage(
    *,
    model: str,
    restart_rate: float = DEFAULT_RESTART_RATE,
    temperature: float = 0.7,
    prompt: str = "smooth",
    **endpoint: Any,
) -> SmoothStage:
    """`lemagen smooth`: LEMMA trajectories rewritten by `model`; the endpoint option `seed`
    (None: 0) picks the trajectories as `export --format lemma --seed` does."""
    from lemagen.lemma.smooth import SMOOTH_VARIABLES, SmoothStage

    calls = Endpoint(**endpoint)
    return SmoothStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, SMOOTH_VARIABLES),
        seed=calls.seed or 0,
        restart_rate=restart_rate,
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )
