"""Prompt templates: plain UTF-8 text files with `{{name}}` placeholders.

Why not `string.Template` (`$name`)? Math prompts are full of `$...$` LaTeX: every literal dollar
would have to be written `$$`, which in LaTeX means display math, so the prompt files would no
longer read as the text the model sees. `{{name}}` never occurs in our LaTeX, and any
`{{identifier}}` that is not a variable of the stage is reported as an error at `file:line:col`
before any request is sent.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lemagen.errors import PromptError

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Template:
    name: str  # shipped name (`correct.gsm8k`) or the path the user gave
    text: str

    @functools.cached_property  # computed once per template (it is in every record's meta)
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def variables(self) -> set[str]:
        return {m.group(1) for m in _PLACEHOLDER.finditer(self.text)}

    def check(self, supplied: set[str]) -> None:
        """Raise PromptError at the first placeholder the stage does not supply, or if a
        supplied variable that the stage needs is never used."""
        for match in _PLACEHOLDER.finditer(self.text):
            if match.group(1) not in supplied:
                line = self.text.count("\n", 0, match.start()) + 1
                col = match.start() - (self.text.rfind("\n", 0, match.start()) + 1) + 1
                raise PromptError(
                    f"{self.name}:{line}:{col}: unknown variable {{{{{match.group(1)}}}}} "
                    f"(this stage supplies: {', '.join(sorted(supplied))})"
                )
        missing = supplied - self.variables()
        if "question" in missing:
            raise PromptError(f"{self.name}: the prompt never uses {{{{question}}}}")

    def render(self, **values: str) -> str:
        parts = self._parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):  # a placeholder's name, then the text after it
            key = parts[i]
            if key not in values:
                raise PromptError(f"{self.name}: prompt needs variable {key!r}")
            out.append(values[key])
            out.append(parts[i + 1])
        return "".join(out)

    @functools.cached_property
    def _parts(self) -> list[str]:
        """The text split once at its placeholders: text, name, text, ..., text (a prompt
        with few-shot examples is kilobytes long; scanning it again for every row cost more
        than the rest of building a call)."""
        return _PLACEHOLDER.split(self.text)


def shipped_names() -> list[str]:
    root = resources.files("lemagen.prompts")
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt"))


def _exists(check: Callable[[], bool]) -> bool:
    """`path.exists()` or `resource.is_file()`: False for a name no file system takes (too
    long), as for one that names nothing."""
    try:
        return check()
    except OSError:
        return False


def load(name_or_path: str) -> Template:
    """A shipped prompt by name (`sample`, `correct.math`) or a prompt file by path."""
    path = Path(name_or_path)
    if path.suffix == ".txt" or _exists(path.exists) or "/" in name_or_path:
        try:
            return Template(name_or_path, path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PromptError(f"{name_or_path}: cannot read prompt: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PromptError(f"{name_or_path}: prompt is not UTF-8 text") from None
    resource = resources.files("lemagen.prompts").joinpath(f"{name_or_path}.txt")
    if not _exists(resource.is_file):
        raise PromptError(
            f"unknown prompt {name_or_path!r}; shipped prompts: {', '.join(shipped_names())}"
        )
    return Template(name_or_path, resource.read_text(encoding="utf-8"))
