"""The curated public surface: exactly what __all__ lists, all importable, all documented."""

from __future__ import annotations

import mlwarden

EXPECTED = {
    "AlreadyExists", "AuditQuery", "AuthenticationError", "CheckFailed", "ConfigError", "ContractMismatch",
    "GateBlocked", "InputError",
    "Initialized", "IntegrityError", "MlwardenError", "NotFound", "PermissionDenied", "SchemaMismatch",
    "UsageError", "Workspace", "WorkspaceNotFound", "__version__", "init_workspace", "open_workspace",
    "upgrade_workspace",
}  # fmt: skip


def test_all_is_the_curated_surface() -> None:
    assert set(mlwarden.__all__) == EXPECTED
    for name in mlwarden.__all__:
        assert hasattr(mlwarden, name), name


def test_public_callables_have_docstrings() -> None:
    for name in mlwarden.__all__:
        obj = getattr(mlwarden, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_share_one_root_and_carry_hints() -> None:
    for name in mlwarden.__all__:
        obj = getattr(mlwarden, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, mlwarden.MlwardenError)
            assert hasattr(obj("x"), "hint")
