"""README's list of reject reasons and the reasons the code can write are the same set: a new
reason must be documented, and a documented one must still exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lemagen.lema.filter import REASONS as FILTER_REASONS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = sorted((ROOT / "lemagen").rglob("*.py"))
REASON = re.compile(r"[a-z]+(?:_[a-z]+)*")
# Calls whose first (RequestFailed: second) argument is the reason a row is set aside for.
REASON_ARG = {"SetAside": 0, "Unusable": 0, "_aside": 0, "RequestFailed": 1}
# Never written: a call collected for a provider batch fails with it inside the engine's
# collection pass, whose output is discarded (lemagen.engine.batching).
INTERNAL = {"batch_pending"}


def readme_reasons() -> set[str]:
    section = README.split("<!-- reasons:start -->", 1)[1].split("<!-- reasons:end -->", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", section))


def _literal(node: ast.AST | None) -> str | None:
    ok = isinstance(node, ast.Constant) and isinstance(node.value, str)
    return node.value if ok and REASON.fullmatch(node.value) else None  # type: ignore[union-attr]


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _assigned_reasons(node: ast.Assign) -> list[ast.expr]:
    """`reason = "x"`, `reason, detail = "x", ...`."""
    values: list[ast.expr] = []
    for target in node.targets:
        if isinstance(target, ast.Name) and target.id == "reason":
            values.append(node.value)
        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            for t, v in zip(target.elts, node.value.elts, strict=False):
                if isinstance(t, ast.Name) and t.id == "reason":
                    values.append(v)
    return values


def code_reasons(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        candidates: list[ast.expr | None] = []
        if isinstance(node, ast.Call):
            index = REASON_ARG.get(_name(node.func) or "")
            if index is not None and len(node.args) > index:
                candidates.append(node.args[index])
            # reason="bad_row" (InputError, RequestFailed), error="says_correct" (a parsed reply)
            candidates += [k.value for k in node.keywords if k.arg in ("reason", "error")]
        elif isinstance(node, ast.Assign):
            candidates += _assigned_reasons(node)
        elif isinstance(node, ast.FunctionDef):  # def __init__(self, message, reason="x")
            args = node.args.args[len(node.args.args) - len(node.args.defaults) :]
            candidates += [
                d for a, d in zip(args, node.args.defaults, strict=True) if a.arg == "reason"
            ]
        for candidate in candidates:
            if isinstance(candidate, ast.Call) and isinstance(candidate.func, ast.Attribute):
                candidates.append(candidate.func.value)  # {...}.get(key, ...)
            elif isinstance(candidate, ast.Dict):  # {"correct": "answer_unchanged"}.get(...)
                candidates += candidate.values
            elif isinstance(candidate, ast.IfExp):  # "no_answer" if ... else "implicit_answer"
                candidates += [candidate.body, candidate.orelse]
            elif (value := _literal(candidate)) is not None:
                found.add(value)
    return found - INTERNAL


def all_code_reasons() -> set[str]:
    found = set(FILTER_REASONS)
    for path in SOURCES:
        found |= code_reasons(path)
    return found


def test_every_reason_the_code_writes_is_in_the_readme() -> None:
    code = all_code_reasons()
    assert len(code) >= 40  # the extraction finds the reasons (not an empty set)
    assert {"bad_row", "bad_json", "budget_exhausted", "no_equations", "says_correct"} <= code
    assert code - readme_reasons() == set()


def test_every_reason_in_the_readme_still_exists() -> None:
    documented = readme_reasons()
    assert len(documented) >= 40
    literals = set()
    for path in SOURCES:
        literals |= set(re.findall(r"[\"']([a-z_]+)[\"']", path.read_text(encoding="utf-8")))
    assert documented - literals == set()
    assert documented - all_code_reasons() == set()
