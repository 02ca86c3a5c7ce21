"""The `mlwarden` command line: one module per command group, thin over the service layer."""

from mlwarden.cli.app import app, main, run

__all__ = ["app", "main", "run"]
