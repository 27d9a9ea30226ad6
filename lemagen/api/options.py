"""What every builder shares: a prompt loaded and checked against its stage's variables, an option's
value checked against its choices, the model list, the default number of worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lemagen.errors import UsageError
from lemagen.records import Problem
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, ToDict, iter_rows
from lemagen.stage import templates

if TYPE_CHECKING:  # the stages are imported where they are built: a command loads its own
    pass


def template(name: str, variables: set[str]) -> templates.Template:
    """A shipped prompt or a prompt file, checked against the variables its stage fills."""
    found = templates.load(name)
    found.check(variables)
    return found


def checked_choice(option: str, value: str, choices: Sequence[str]) -> str:
    """`value`, one of `choices` for the option (keyword) named `option`."""
    if value not in choices:
        raise UsageError(f"{{{option}=}}: choose from {', '.join(choices)}", **{option: value})
    return value


def model_list(model: str | Sequence[str]) -> list[str]:
    models = [model] if isinstance(model, str) else list(model)
    if not models or not all(models):
        raise UsageError("give a model ({model})")
    return models


def default_workers() -> int:
    """`--workers` when not given: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def problem_rows(source: str | Iterable[Mapping[str, Any] | ToDict]) -> Iterable[Problem]:
    reader = ProblemReader()
    if isinstance(source, str):
        return iter_rows(source, reader.read, skip_bad_rows=False, rejects=Rejects(None))
    return (
        reader.read(dict(row) if isinstance(row, Mapping) else row.to_dict(), f"<rows>:{i}")
        for i, row in enumerate(source, 1)
    )
