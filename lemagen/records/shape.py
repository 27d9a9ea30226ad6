"""A JSON shape declared once, as a `Shape` (a frozen msgspec Struct), and read and written from
that one declaration.

- Its fields, in order, are the JSON keys in the order they are written; msgspec reads a line
  straight into it (in C: the one-pass reading of `records.fast`) and checks a decoded object
  against it (`from_dict`, whose msgspec error becomes lemagen's one-line `file:line` error).
- `WhenSet[T]`: a field written only when it differs from its default (None, `{}`); a field
  whose default is `msgspec.UNSET` is written only when it was set, as msgspec does.
- `OrNull[T]`: a field that reads null as its default (a record's `meta: null` is no meta).
- `extra`: the keys of the object lemagen does not know (a user's, a later version's), kept on
  reading and written back after the known ones, so a record passes every stage intact.
- A record written on its own JSONL line (a shape with a msgspec tag: `tag_field="kind"`,
  `schema.ProblemRecord` and `schema.Reject`) states its kind first (`kind`) and its schema
  version last (`schema_version`), from schema version 3 on; `record_kind` knows the kind of
  one written before.

A field added to a shape is added in one place: its declaration.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from typing_extensions import Self

from lemagen.errors import InputError
from lemagen.records.common import EXTRA, JSON, SCHEMA_VERSION, input_error
from lemagen.terms import KINDS, Kind

T = TypeVar("T")
TAG = "kind"
VERSION = "schema_version"
KIND_SINCE = 3  # the schema version from which records state their kind


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_WHEN_SET = _Marker("WhenSet")
_OR_NULL = _Marker("OrNull")
WhenSet = Annotated[T, _WHEN_SET]
OrNull = Annotated[T, _OR_NULL]


if TYPE_CHECKING:
    Extra = dict[str, Any]
else:

    class Extra(dict):
        """The keys of a JSON object lemagen does not know: a dict (to mypy, a plain one) of a
        type msgspec does not decode, so no key of a line fills it (a line with a key
        `(extra)` is read the general way, where that key is an unknown one)."""


class Shape(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A JSON object lemagen reads and writes (see the module's docstring)."""

    extra: Extra = msgspec.field(default_factory=Extra, name=EXTRA)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str, *, prefix: str = "", hint: str = ""
    ) -> Self:
        """`data` as this shape, its unknown keys in `extra`, or the one-line `InputError`
        naming `where` (`file:line`) and the field (under `prefix`)."""
        layout = _layout(cls)
        known = layout.keys
        if layout.tag is not None and data.get(TAG, layout.tag) != layout.tag:
            kind = stated_kind(data)
            if kind is not None:
                raise InputError(
                    f"{where}: a {kind} record, not a {layout.tag} record{hint}",
                    reason="bad_record",
                )
            known = known - {TAG}  # an earlier version's record with a `kind` key of its own
        args = {k: v for k, v in data.items() if k in known}
        extra = Extra({k: v for k, v in data.items() if k not in known})
        for name, nested in layout.nested:
            value = args.get(name)
            if isinstance(value, dict):  # anything else is msgspec's to refuse
                args[name] = nested.shape.from_dict(value, where, prefix=f"{prefix}{name}.")
        for name in layout.or_null:
            if name in args and args[name] is None:
                del args[name]
        try:
            out = msgspec.convert(args, cls)
        except msgspec.ValidationError as exc:
            raise input_error(exc, where, prefix, hint, layout.or_null, layout.choices) from None
        return msgspec.structs.replace(out, extra=extra) if extra else out

    def to_dict(self) -> JSON:
        """The JSON object, keys in the declared order, unknown keys after them."""
        return _layout(type(self)).write(self)

    def special(self) -> JSON | None:
        """What this shape writes before its unknown keys when that is not its fields, else
        None (a shape whose keys depend on its values overrides this)."""
        return None


class Layout(msgspec.Struct, frozen=True):
    """What reading and writing need to know of a shape, from its declaration."""

    shape: type[Shape]
    keys: frozenset[str]  # the JSON keys it reads
    when_set: tuple[tuple[str, Any], ...]  # (key, default) written only when not the default
    unset: tuple[str, ...]  # keys whose default is UNSET: written only when set
    or_null: frozenset[str]  # keys whose null reads as the default
    nested: tuple[tuple[str, Layout], ...]  # keys holding a shape (or null)
    tuples: tuple[str, ...]  # keys holding a tuple: written as a JSON list, a Python list
    tag: str | None  # a record's kind
    literals: dict[str, tuple[Any, ...]]  # keys of a Literal type: their values
    special: Callable[[Any], JSON | None] | None  # the shape's `special`, when it has one
    write: Callable[[Any], JSON]  # `to_dict`, made from the rest (`_writer`)

    def choices(self, path: str) -> tuple[Any, ...]:
        """The values a Literal field takes, by its path (`meta.stage`), for a message."""
        key, _, rest = path.partition(".")
        if not rest:
            return self.literals.get(key, ())
        nested = dict(self.nested).get(key)
        return () if nested is None else nested.choices(rest)


_LAYOUTS: dict[type[Shape], Layout] = {}


def _layout(cls: type[Shape]) -> Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = _make_layout(cls)
    return layout


def layout(cls: type[Shape]) -> Layout:
    """What reading and writing know of `cls`, from its declaration."""
    return _layout(cls)


def _make_layout(cls: type[Shape]) -> Layout:
    keys, when_set, unset, or_null, nested, tuples, literals = set(), [], [], set(), [], [], {}
    for f in msgspec.structs.fields(cls):
        if f.encode_name == EXTRA:
            continue
        keys.add(f.encode_name)
        markers = f.type.__metadata__ if get_origin(f.type) is Annotated else ()
        if _WHEN_SET in markers:
            default = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
            when_set.append((f.encode_name, default))
        if f.default is msgspec.UNSET and f.encode_name != VERSION:
            unset.append(f.encode_name)
        if _OR_NULL in markers:
            or_null.add(f.encode_name)
        for arg in _members(f.type):
            if isinstance(arg, type) and issubclass(arg, Shape):
                nested.append((f.encode_name, _layout(arg)))
            elif get_origin(arg) is Literal:
                literals[f.encode_name] = get_args(arg)
            elif get_origin(arg) is tuple:
                tuples.append(f.encode_name)
    tag = cls.__struct_config__.tag
    if tag is not None:
        keys.add(TAG)
    plain = Layout(
        cls,
        frozenset(keys),
        tuple(when_set),
        tuple(unset),
        frozenset(or_null),
        tuple(nested),
        tuple(tuples),
        tag if isinstance(tag, str) else None,
        literals,
        None if cls.special is Shape.special else cls.special,
        _unwritten,
    )
    return msgspec.structs.replace(plain, write=_writer(plain))


def _unwritten(shape: Any) -> JSON:
    raise AssertionError("a layout's writer is made with it")


def _writer(layout: Layout) -> Callable[[Any], JSON]:
    """`to_dict` of a shape, as a function written out from its layout, field by field in
    order (as `dataclasses` makes `__init__`): the cost of a hand-written `to_dict`, several
    times less than walking the layout for each record."""
    names = {f.encode_name: f.name for f in msgspec.structs.fields(layout.shape)}
    when_set, nested = dict(layout.when_set), dict(layout.nested)
    env: dict[str, Any] = {"UNSET": msgspec.UNSET, "SPECIAL": layout.special}
    lines = ["def write(s):"]
    if layout.special is not None:
        lines += [
            "    out = SPECIAL(s)",
            "    if out is not None:",
            "        return rest(s, out)",
        ]
    lines.append("    out = " + (f"{{{TAG!r}: {layout.tag!r}}}" if layout.tag else "{}"))
    for i, (key, attr) in enumerate(names.items()):
        if key in (EXTRA, VERSION):
            continue
        lines.append(f"    v = s.{attr}")
        if key in nested:
            env[f"W{i}"] = nested[key].write
            lines.append(f"    v = v if v is None else W{i}(v)")
        elif key in layout.tuples:
            lines.append("    v = list(v) if type(v) is tuple else v")
        if key in when_set:
            env[f"D{i}"] = when_set[key]
            lines += [f"    if v is not None and v != D{i}:", f"        out[{key!r}] = v"]
        elif key in layout.unset:
            lines += ["    if v is not UNSET:", f"        out[{key!r}] = v"]
        else:
            lines.append(f"    out[{key!r}] = v")
    lines.append("    return rest(s, out)")
    lines += [
        "def rest(s, out):  # after the fields: the unknown keys, a record's version",
        "    for k, x in s.extra.items():",
        "        out.setdefault(k, x)",
    ]
    if layout.tag is not None:
        lines.append(f"    out[{VERSION!r}] = {SCHEMA_VERSION!r}")
    lines.append("    return out")
    exec("\n".join(lines), env)  # the source is made above from the field names
    write: Callable[[Any], JSON] = env["write"]
    return write


def _members(tp: Any) -> tuple[Any, ...]:
    """The types a field's type is made of: `Annotated` unwrapped, a union's members."""
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return tuple(m for arg in get_args(tp) for m in _members(arg))
    return (tp,)


def stated_kind(data: Mapping[str, Any]) -> Kind | None:
    """The kind a record states (`kind`, from schema version 3 on), or None: records written
    before have no `kind`, and another key `kind` (a training row's, a user's) is no kind."""
    kind = data.get(TAG)
    if kind is None or kind not in KINDS:
        return None
    version = data.get(VERSION)
    if type(version) is not int or version < KIND_SINCE:
        return None
    return typing.cast(Kind, kind)


# How a record written before `kind` existed is known: by the keys only its kind has (all of
# them present), asked in this order.
_INFERRED: tuple[tuple[Kind, tuple[str, ...]], ...] = (
    ("analysis", ("first_error_step", "error_type", "original")),
    ("asker", ("sub_questions", "answers_all")),
    ("truster", ("preferred", "initial", "refined")),
    ("correction", ("correction_id",)),
    ("sample", ("sample_id", "steps")),
    ("reject", ("reason", "record")),
    ("retry", ("mistakes", "solution")),
)


def record_kind(data: Mapping[str, Any]) -> Kind | None:
    """What record `data` is: the kind it states, else the kind its keys say (a record written
    before schema version 3), else None."""
    kind = stated_kind(data)
    if kind is not None:
        return kind
    for kind, keys in _INFERRED:
        if all(key in data for key in keys):
            return kind
    return None


# A record's `schema_version` field: the version it was read with (UNSET: made by this run),
# any value; it is written as SCHEMA_VERSION.
Version = Any


def kind_of_shape(cls: type[Shape]) -> Kind:
    """The kind a record type writes (its msgspec tag)."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str), cls
    assert tag in KINDS, cls
    return tag
