"""The `mlwarden` command line: one module per command group, thin over the service layer."""

from mlwarden.cli.entry import main, run

__all__ = ["main", "run"]
