"""mlwarden: security controls around the ML lifecycle, under one tamper-evident audit log.

The public surface is what ``__all__`` lists; everything else is private and may change.

    import mlwarden
    ws = mlwarden.open_workspace("path/to/project", token="mlw_...")
    ws.audit.verify().ok
"""

import importlib
from typing import TYPE_CHECKING, Any

from mlwarden.errors import (
    AlreadyExists,
    AuthenticationError,
    CheckFailed,
    ConfigError,
    ContractMismatch,
    GateBlocked,
    InputError,
    IntegrityError,
    MlwardenError,
    NotFound,
    PermissionDenied,
    SchemaMismatch,
    UsageError,
    WorkspaceNotFound,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlwarden.service.auditing import AuditQuery
    from mlwarden.service.init import Initialized, init_workspace, upgrade_workspace
    from mlwarden.service.workspace import Workspace, open_workspace

# The workspace stack (SQLAlchemy, the audit log) loads on first use, so that `import mlwarden.scan`
# and `mlwarden scan` stay light (PEP 562).
_LAZY = {
    "AuditQuery": "mlwarden.service.auditing",
    "Initialized": "mlwarden.service.init",
    "init_workspace": "mlwarden.service.init",
    "upgrade_workspace": "mlwarden.service.init",
    "Workspace": "mlwarden.service.workspace",
    "open_workspace": "mlwarden.service.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwarden' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AlreadyExists",
    "AuditQuery",
    "AuthenticationError",
    "CheckFailed",
    "ConfigError",
    "ContractMismatch",
    "GateBlocked",
    "Initialized",
    "InputError",
    "IntegrityError",
    "MlwardenError",
    "NotFound",
    "PermissionDenied",
    "SchemaMismatch",
    "UsageError",
    "Workspace",
    "WorkspaceNotFound",
    "__version__",
    "init_workspace",
    "open_workspace",
    "upgrade_workspace",
]
