"""mlwarden: security controls around the ML lifecycle, under one tamper-evident audit log.

The public surface is what ``__all__`` lists; everything else is private and may change.

    import mlwarden
    ws = mlwarden.open_workspace("path/to/project", token="mlw_...")
    ws.audit.verify().ok
"""

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
from mlwarden.service.auditing import AuditQuery
from mlwarden.service.init import Initialized, init_workspace, upgrade_workspace
from mlwarden.service.workspace import Workspace, open_workspace

__version__ = "0.1.0"

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
