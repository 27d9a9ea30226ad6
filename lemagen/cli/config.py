"""Where options come from besides the command line: environment variables
(`LEMAGEN_<COMMAND>_<OPTION>`) and a project config file (`lemagen.toml`); and the
`--version` and `-v` conventions.

Precedence is click's own: a flag, else its environment variable, else the config file (given
to click as the context's `default_map`), else the option's default.
"""

from __future__ import annotations

import logging
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from lemagen._version import __version__
from lemagen.redact import redact

PREFIX = "LEMAGEN"
CONFIG_NAME = "lemagen.toml"
LIBRARIES = ("click", "openai", "httptools", "aiohttp", "uvloop", "msgspec", "sympy",
             "math-verify", "pyarrow", "datasets", "zstandard")  # fmt: skip


def envvar(command: str, option: click.Option) -> str | None:
    """`LEMAGEN_SAMPLE_MAX_TOKENS` for `sample --max-tokens`: named after the flag (click's
    automatic names follow the parameter's Python name instead, `LEMAGEN_SAMPLE_MODELS` for
    `-m/--model`, `LEMAGEN_EXPORT_FMT` for `--format`)."""
    flag = _long_name(option)
    if flag is None:
        return None
    parts = [PREFIX, command, flag] if command else [PREFIX, flag]
    return "_".join(p.upper().replace("-", "_") for p in parts)


def _long_name(option: click.Option) -> str | None:
    """The option's long flag without dashes; for a short-only one (`-n`) its name."""
    longs = [o for o in option.opts if o.startswith("--")]
    return longs[0][2:] if longs else option.name


def name_envvars(group: click.Group) -> None:
    """Give every option of `group` and its commands an environment variable (shown in
    --help), except those that read a variable of their own (OPENAI_BASE_URL, ...)."""
    commands: list[tuple[str, click.Command]] = [("", group)]
    commands += sorted(group.commands.items())
    for name, command in commands:
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar is None and not param.hidden:
                if param.is_eager and param.expose_value is False:
                    continue  # --help, --version
                param.envvar = envvar(name, param)
                param.show_envvar = True


# ---------------------------------------------------------------- the config file


def load_config(path: str | None, group: click.Group, ctx: click.Context) -> dict[str, Any]:
    """The `default_map` a config file gives: `--config PATH`, else `lemagen.toml` in the
    working directory when there is one, else nothing.

    Top-level keys apply to every command that has the option; a `[command]` table's keys to
    that command and over the top-level ones. Keys are option names (`max-tokens` or
    `max_tokens`); values are checked as the option checks them, and a mistake is a usage
    error naming the file and key."""
    if path is None:
        if not Path(CONFIG_NAME).is_file():
            return {}
        path = CONFIG_NAME
    data = _read_toml(path)
    load_all = getattr(group, "load_all", None)
    if load_all is not None:  # the file's keys are checked against every command's options
        load_all()
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for name in tables:
        if name not in group.commands:
            raise click.UsageError(f"{path}: [{name}]: no such command")
    out: dict[str, Any] = {}
    used: set[str] = set()
    for name, command in group.commands.items():
        options = _options(command)
        values: dict[str, Any] = {}
        for key, value in shared.items():
            option = options.get(_key(key))
            if option is not None:
                values[option.name or key] = _checked(option, value, path, key, ctx)
                used.add(key)
        for key, value in tables.get(name, {}).items():
            option = options.get(_key(key))
            if option is None:
                raise click.UsageError(f"{path}: [{name}] {key}: `lemagen {name}` has no --{key}")
            values[option.name or key] = _checked(option, value, path, f"[{name}] {key}", ctx)
        if values:
            out[name] = values
    unknown = sorted(set(shared) - used)
    if unknown:
        raise click.UsageError(f"{path}: {unknown[0]}: no command has --{_key(unknown[0])}")
    return out


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except OSError as exc:
        raise click.UsageError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"{path}: not TOML: {exc}") from None
    return data


def _key(key: str) -> str:
    return key.replace("_", "-")


def _options(command: click.Command) -> dict[str, click.Option]:
    out = {}
    for param in command.params:
        name = _long_name(param) if isinstance(param, click.Option) else None
        if name is not None and isinstance(param, click.Option) and param.expose_value:
            out[name] = param
    return out


def _checked(option: click.Option, value: Any, path: str, key: str, ctx: click.Context) -> Any:
    if option.multiple and not isinstance(value, list):
        value = [value]  # `model = "gpt-4o"` for a repeatable option: one value
    try:
        return option.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise click.UsageError(f"{path}: {key}: {exc.message}") from None


# ---------------------------------------------------------------- --version and -v


def version_text() -> str:
    """lemagen's version, and what decides whether two runs agree: the answer checkers', the
    request store's schema and key versions, the records' schema; then Python and the key
    libraries."""
    from lemagen.engine.calls import KEY_VERSION
    from lemagen.engine.store import SCHEMA_VERSION as STORE_SCHEMA
    from lemagen.math.grading import checker_info
    from lemagen.records import SCHEMA_VERSION

    gsm8k, math = checker_info("gsm8k"), checker_info("math")
    lines = [
        f"lemagen, version {__version__}",
        f"grader: gsm8k {gsm8k['name']} {gsm8k['version']}, math {math['name']} {math['version']}",
        f"request store: schema {STORE_SCHEMA}, key version {KEY_VERSION}",
        f"records: schema {SCHEMA_VERSION}",
        f"python {platform.python_version()} ({platform.python_implementation()})",
    ]
    libraries = []
    for name in LIBRARIES:
        try:
            libraries.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            libraries.append(f"{name} (not installed)")
    lines.append("libraries: " + ", ".join(libraries))
    return "\n".join(lines)


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_HANDLER_MARK = "_lemagen_cli"


def configure_logging(verbosity: int) -> None:
    """Warnings (a server statement not believed, a proxy variable not honoured) always;
    -v: INFO (each request sent, each row set aside and why), -vv: DEBUG (request bodies),
    on stderr, through `redact`. Only the `lemagen` logger is touched."""
    logger = logging.getLogger("lemagen")
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_Redacting("lemagen: %(message)s"))
    logger.addHandler(handler)
    if verbosity <= 0:
        logger.setLevel(logging.WARNING)
    else:
        logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
