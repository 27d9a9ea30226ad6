"""The CLI reference, docs/cli.md: the `--help` of every command and subcommand on one page.

    python -m lemagen.cli.docs -o docs/cli.md     # regenerate after changing an option
    python -m lemagen.cli.docs --check docs/cli.md  # exit 1 when the file is stale

The text is built from the commands themselves at a fixed width, without reading
lemagen.toml or the environment, so it is the same on every machine
(tests/test_docs.py fails when the file differs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from lemagen.cli.app import cli

WIDTH = 100

HEADER = """\
# CLI reference

<!-- Generated from --help by `python -m lemagen.cli.docs -o docs/cli.md`: do not edit. -->

Every command's `--help`, as `lemagen COMMAND --help` prints it (at {width} columns). Each option
can also be set by the environment variable shown beside it or in `lemagen.toml`
([configuration](configuration.md)).
"""


def _commands(
    command: click.Command, ctx: click.Context
) -> list[tuple[click.Command, click.Context]]:
    """`command` and every subcommand under it, depth first, in name order."""
    found = [(command, ctx)]
    if isinstance(command, click.Group):
        load_all = getattr(command, "load_all", None)
        if load_all is not None:
            load_all()
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(
                sub, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH
            )
            found += _commands(sub, sub_ctx)
    return found


def reference() -> str:
    """The page: a heading and the help text of each command."""
    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(cli, info_name="lemagen", **settings)  # -h, --help as the command has
    parts = [HEADER.format(width=WIDTH)]
    for command, ctx in _commands(cli, root):
        parts.append(f"## `{ctx.command_path}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lemagen.cli.docs", description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, help="write the page here (default: stdout)")
    where.add_argument("--check", type=Path, help="exit 1 if this file is not the page")
    args = parser.parse_args(argv)
    text = reference()
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{args.check} is stale: regenerate it with python -m lemagen.cli.docs -o "
                f"{args.check}\n"
            )
            return 1
        return 0
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
