"""Append-only triggers, shared by the migrations that create immutable tables.

They stop mistakes and casual edits; they do not stop someone who can drop them. That is what
`audit verify` (which reconciles these tables with the log) and exported checkpoints are for
(docs/audit.md).
"""

from __future__ import annotations

from alembic import op


def forbid_update_and_delete(table: str, why: str) -> None:
    """Make ``table`` append-only for every client of the database; ``why`` ends the error message."""
    if op.get_bind().dialect.name == "postgresql":
        function = f"mlwarden_{table}_append_only"
        op.execute(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION 'mlwarden: % on % is forbidden: {why}', "
            "TG_OP, TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'mlwarden: {verb} on {table} is forbidden: {why}'); END"
        )


def drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS mlwarden_{table}_append_only()")
        return
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
