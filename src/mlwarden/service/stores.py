"""The blob store as users see it: integrity verification."""

from __future__ import annotations

from sqlalchemy import Connection

from mlwarden.domain.actions import Action
from mlwarden.domain.events import Resource
from mlwarden.service.context import ServiceContext
from mlwarden.store.blobs import BlobVerifyReport, ProgressCallback


class StoreService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def verify(self, progress: ProgressCallback | None = None) -> BlobVerifyReport:
        """Re-hash every blob; a mismatch is reported, never silently repaired."""

        def fetch(_conn: Connection) -> BlobVerifyReport:
            return self._ctx.blobs.verify(progress)

        return self._ctx.door.read(self._ctx.actor, Action.STORE_VERIFY, Resource("blob_store", "main"), fetch)
