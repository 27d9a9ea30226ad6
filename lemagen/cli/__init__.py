"""Command line: options, the stage each command builds, and exit codes. No stage logic:
every command builds its stage and hands it to `running.run_stage`. A command's module is
imported when the command is looked up (`app.LazyGroup`); `cli.load_all()` loads them all."""

from lemagen.cli.app import cli, main
from lemagen.cli.config import name_envvars

name_envvars(cli)

__all__ = ["cli", "main"]
