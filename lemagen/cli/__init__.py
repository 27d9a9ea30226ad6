"""Command line: options, the stage each command builds, and exit codes. No stage logic:
every command builds its stage and hands it to `running.run_stage`."""

from lemagen.cli import batches, curate, generate, mistakes, offline, trajectories
from lemagen.cli.app import cli, main
from lemagen.cli.config import name_envvars

name_envvars(cli)

__all__ = ["batches", "cli", "curate", "generate", "main", "mistakes", "offline", "trajectories"]
