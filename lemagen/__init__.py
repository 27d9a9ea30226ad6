"""lemagen: learning-from-mistakes training data for math reasoning models.

`import lemagen` gives one function per stage (`lemagen.sample`, `correct`, `filter`, `grade`,
`inject`, `export`, `stats`, `evolve`, `crosscheck`, `analyze`, `smooth`, `art_ask`,
`art_trust`) over rows held in Python; see
`lemagen.api`. They are imported on first use, so importing lemagen itself stays cheap and has
no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lemagen._version import __version__

if TYPE_CHECKING:
    from lemagen.api import (
        Endpoint,
        Result,
        analyze,
        art_ask,
        art_trust,
        correct,
        crosscheck,
        evolve,
        export,
        filter,
        grade,
        inject,
        sample,
        smooth,
        stats,
    )

__all__ = [
    "Endpoint",
    "Result",
    "__version__",
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
    "sample",
    "smooth",
    "stats",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lemagen import api

        return getattr(api, name)
    raise AttributeError(f"module 'lemagen' has no attribute {name!r}")
