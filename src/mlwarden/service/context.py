"""What every service needs: the door, the actor, the clock and the workspace's parts."""

from __future__ import annotations

from dataclasses import dataclass

from mlwarden.audit.checkpoint import NoteVerifier
from mlwarden.audit.log import AuditLog
from mlwarden.domain.events import Actor
from mlwarden.service.config import WorkspaceConfig, WorkspacePaths
from mlwarden.service.door import Door
from mlwarden.store.blobs import LocalBlobStore
from mlwarden.store.db import Database


@dataclass
class ServiceContext:
    paths: WorkspacePaths
    config: WorkspaceConfig
    db: Database
    log: AuditLog
    verifier: NoteVerifier
    door: Door
    blobs: LocalBlobStore
    actor: Actor
