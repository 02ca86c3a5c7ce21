"""The Workspace facade: opens the parts of a workspace and exposes its services (the one door)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlwarden.access.policy import Authorizer
from mlwarden.domain.events import ANONYMOUS, Actor
from mlwarden.errors import ConfigError
from mlwarden.service import sessions
from mlwarden.service.approvals import ApprovalService
from mlwarden.service.assembly import build_context, step_up_with
from mlwarden.service.auditing import AuditService
from mlwarden.service.config import WorkspaceConfig, find_workspace
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import mutation
from mlwarden.service.mfa import MfaService
from mlwarden.service.projects import ProjectService
from mlwarden.service.roles import RoleService
from mlwarden.service.stores import StoreService
from mlwarden.service.tokens import NewToken, TokenService, authenticate
from mlwarden.service.users import UserService
from mlwarden.store import schema
from mlwarden.store.tables import workspace_meta

if TYPE_CHECKING:
    from mlwarden.service.datasets import DatasetService
    from mlwarden.service.defense import DefenseService
    from mlwarden.service.models import RegistryService
    from mlwarden.service.quality import QualityService
    from mlwarden.service.scans import ScanService
    from mlwarden.service.tracking import Run, TrackingService

ENV_TOKEN = "MLWARDEN_TOKEN"


class Workspace:
    """An open workspace, acting as one actor. Use as a context manager or call ``close()``."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self.users = UserService(ctx, step_up_with(ctx))
        self.tokens = TokenService(ctx, step_up_with(ctx))
        self.audit = AuditService(ctx)
        self.store = StoreService(ctx)
        self.mfa = MfaService(ctx)
        self.projects = ProjectService(ctx)
        self.roles = RoleService(ctx, step_up_with(ctx))
        self.approvals = ApprovalService(ctx, step_up_with(ctx))

    @cached_property
    def data(self) -> DatasetService:
        """Datasets (loaded on first use: pyarrow, polars and the hash engine cost a second to import)."""
        from mlwarden.service.datasets import DatasetService

        return DatasetService(self._ctx, step_up_with(self._ctx))

    @cached_property
    def quality(self) -> QualityService:
        """The ingestion gate: contracts, policies, verdicts, profiles, dry runs (loaded on first use)."""
        from mlwarden.service.quality import QualityService

        return QualityService(self._ctx)

    @cached_property
    def runs(self) -> TrackingService:
        """Experiment tracking: runs, their params, metrics, tags and input dataset versions."""
        from mlwarden.service.tracking import TrackingService

        return TrackingService(self._ctx)

    def start_run(self, project: str | None = None, name: str = "run") -> Run:
        """``with ws.start_run("fraud", "baseline") as run:`` (see ``TrackingService.start_run``)."""
        return self.runs.start_run(project, name)

    @cached_property
    def models(self) -> RegistryService:
        """The model registry: versions, signatures, evaluations, stages and promotions."""
        from mlwarden.service.models import RegistryService

        return RegistryService(self._ctx, step_up_with(self._ctx))

    def load_model(self, ref: str, *, project: str | None = None) -> Any:
        """A registered model, loaded only after its signature and every file verify."""
        return self.models.load(ref, project=project)

    @cached_property
    def defense(self) -> DefenseService:
        """Poison hunting in a dataset version: suspicious rows, suspected sources, the revert."""
        from mlwarden.service.defense import DefenseService

        return DefenseService(self._ctx, step_up_with(self._ctx))

    @cached_property
    def scans(self) -> ScanService:
        """The model scanner with this workspace's allow-list (loaded on first use)."""
        from mlwarden.service.scans import ScanService

        return ScanService(self._ctx, step_up_with(self._ctx))

    @property
    def root(self) -> Path:
        return self._ctx.paths.root

    @property
    def config(self) -> WorkspaceConfig:
        return self._ctx.config

    @property
    def actor(self) -> Actor:
        return self._ctx.actor

    @property
    def checkpoint_vkey(self) -> str:
        """The note verifier key of this workspace's checkpoints (what witnesses pin)."""
        return self._ctx.verifier.to_vkey()

    def whoami(self) -> Actor:
        return self._ctx.actor

    @mutation
    def login(
        self,
        name: str,
        password: str,
        *,
        token_name: str = "login",
        expires_in: timedelta | None = None,
    ) -> NewToken:
        """Check a password and issue a new API token for that user (shown once)."""
        return sessions.login(self._ctx, name, password, token_name=token_name, expires_in=expires_in)

    def close(self) -> None:
        self._ctx.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def open_workspace(
    path: str | Path | None = None,
    *,
    token: str | None = None,
    client: str = "sdk",
    authorizer: Authorizer | None = None,
    request_id: str | None = None,
) -> Workspace:
    """Open the workspace at ``path`` (or found from the current folder) as the token's user.

    ``token=None`` takes MLWARDEN_TOKEN; ``token=""`` opens anonymously on purpose. Anonymously, only
    ``login`` works.
    """
    paths = find_workspace(path)
    ctx = build_context(paths, ANONYMOUS, authorizer)
    try:
        schema.require_current(ctx.db)
        _require_own_database(ctx)
        presented = token if token is not None else os.environ.get(ENV_TOKEN)
        request_id = request_id or uuid.uuid4().hex
        if presented:
            ctx.actor = authenticate(ctx.door, presented, client=client, request_id=request_id)
        else:
            ctx.actor = Actor(
                name=ANONYMOUS.name, auth_method=ANONYMOUS.auth_method, client=client, request_id=request_id
            )
    except BaseException:
        ctx.db.dispose()
        raise
    return Workspace(ctx)


def _require_own_database(ctx: ServiceContext) -> None:
    """Refuse a database that belongs to another workspace (a wrong database_url or MLWARDEN_DATABASE_URL):
    writing one workspace's events into another's log would corrupt both stories."""
    with ctx.db.read() as conn:
        recorded = conn.execute(
            select(workspace_meta.c.value).where(workspace_meta.c.key == "workspace_id")
        ).scalar_one_or_none()
    if recorded != ctx.config.workspace_id:
        raise ConfigError(
            f"the database belongs to workspace {recorded or '(none)'}, not to this one ({ctx.config.workspace_id})",
            hint="check database_url in .mlwarden/config.toml and MLWARDEN_DATABASE_URL",
        )
