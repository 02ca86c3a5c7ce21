"""Content-addressed blob storage: the ``BlobStore`` protocol and its local-folder backend."""

from mlwarden.store.blobs.interface import BadBlob, BlobProblem, BlobStore, BlobVerifyReport, ProgressCallback
from mlwarden.store.blobs.local import LocalBlobStore

__all__ = ["BadBlob", "BlobProblem", "BlobStore", "BlobVerifyReport", "LocalBlobStore", "ProgressCallback"]
