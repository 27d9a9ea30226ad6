"""The builders of CoTnPoT's stage (`lemagen.cotnpot`): crosscheck: each stage built from plain
keyword options, shared by its command (`lemagen.cli`) and its API function (`lemagen.api`), so
a script and a command given the same options send the same requests and write the same records.
Model-calling builders take the endpoint options (`Endpoint`'s fields) as further keywords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lemagen.api.endpoint import Endpoint

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    from lemagen.cotnpot.crosscheck import CrosscheckStage
from lemagen.api.options import default_workers, model_list, template


def crosscheck_stage(
    *,
    model: str,
    temperature: float = 0.0,
    prompt: str = "crosscheck",
    check_all: bool = False,
    program_timeout: float = 5.0,
    program_memory: int = 1024,
    workers: int | None = None,
    **endpoint: Any,
) -> CrosscheckStage:
    """`lemagen crosscheck`: `program_memory` in MB; programs run in `workers` sandboxes at
    once (None: one per core)."""
    from lemagen.cotnpot.crosscheck import CROSSCHECK_VARIABLES, CrosscheckStage
    from lemagen.cotnpot.sandbox import Limits

    calls = Endpoint(**endpoint)
    seconds = max(1, int(program_timeout + 0.999))
    return CrosscheckStage(
        calls.engine_config(model_list(model)),
        model=model,
        template=template(prompt, CROSSCHECK_VARIABLES),
        sampling=calls.sampling(temperature),
        check_timeout=calls.check_timeout,
        max_pending=calls.max_pending(),
        limits=Limits(timeout=program_timeout, cpu=seconds, memory=program_memory << 20),
        check_all=check_all,
        request=calls.request_shape(),
        workers=workers or default_workers(),
    )
