"""Command line: options, the stage each command builds, and exit codes. No stage logic:
every command builds its stage and hands it to `running.run_stage`."""

from lemagen.cli import curate, generate, mistakes, offline, trajectories
from lemagen.cli.app import cli, main
from lemagen.cli.config import name_envvars

name_envvars(cli)

__all__ = ["cli", "curate", "generate", "main", "mistakes", "offline", "trajectories"]
