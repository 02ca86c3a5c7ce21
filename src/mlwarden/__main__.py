"""`python -m mlwarden` is the `mlwarden` command."""

from mlwarden.cli import run

run()
