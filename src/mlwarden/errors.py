"""The one error root. Every error says what went wrong and, in ``hint``, what to do next.

The CLI maps these classes to exit codes in one place (``mlwarden.cli._errors``):
``CheckFailed`` and its subclasses exit 1, usage and input errors exit 2, ``PermissionDenied`` exits 3.
"""

from __future__ import annotations


class MlwardenError(Exception):
    """Root of every error mlwarden raises on purpose."""

    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(MlwardenError):
    """The request itself is malformed: a bad argument, option or input file."""


class NotFound(UsageError):
    """The named thing does not exist."""


class AlreadyExists(UsageError):
    """The thing to create exists already."""


class ConfigError(UsageError):
    """The workspace configuration is missing or invalid."""


class WorkspaceNotFound(ConfigError):
    """No workspace at the given path, or in the current folder or any folder above it."""

    default_hint = "run `mlwarden init`, or pass --workspace PATH / set MLWARDEN_WORKSPACE"


class SchemaMismatch(ConfigError):
    """The database schema is not the one this version of mlwarden expects."""


class InputError(UsageError):
    """An input file or table cannot be read: malformed, badly encoded, empty or of an unknown format."""


class ContractMismatch(InputError):
    """A batch does not match its dataset's schema: a missing or extra column, or a type that does not fit."""


class AuthenticationError(MlwardenError):
    """No valid credentials were presented."""

    default_hint = "log in with `mlwarden login` or set MLWARDEN_TOKEN"


class PermissionDenied(MlwardenError):
    """The actor is known but not allowed to do this."""


class CheckFailed(MlwardenError):
    """A check ran and found a problem (tamper, malicious model, drift...)."""


class IntegrityError(CheckFailed):
    """Stored content does not match its digest, or the audit log does not verify."""


class GateBlocked(CheckFailed):
    """A gate refused to let something through."""
