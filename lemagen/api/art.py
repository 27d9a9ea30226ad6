"""The builders of ART's stages (`lemagen.art`): art ask, art trust: each stage built from plain
keyword options, shared by its command (`lemagen.cli`) and its API function (`lemagen.api`), so
a script and a command given the same options send the same requests and write the same records.
Model-calling builders take the endpoint options (`Endpoint`'s fields) as further keywords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lemagen.api.endpoint import Endpoint

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.art.art import AskStage, TrustStage
from lemagen.api.options import template


def art_ask_stage(
    *, model: str, temperature: float = 0.0, prompt: str = "art-ask", **endpoint: Any
) -> AskStage:
    """`lemagen art ask`: Asker records (sub-questions written by `model`)."""
    from lemagen.art.art import ASK_VARIABLES, AskStage

    calls = Endpoint(**endpoint)
    return AskStage(
        calls.engine_config([model]),
        model=model,
        template=template(prompt, ASK_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        request=calls.request_shape(),
    )


def art_trust_stage() -> TrustStage:
    """`lemagen art trust`: Truster records; no model."""
    from lemagen.art.art import TrustStage

    return TrustStage()
