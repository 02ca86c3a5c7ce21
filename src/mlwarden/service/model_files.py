"""A model version's files: stored as content-addressed blobs, signed as a whole, checked and materialized.

The version digest commits to the manifest: SHA-256 over the canonical JSON list of
``{"path", "sha256", "size"}`` sorted by path (docs/registry.md). The signature (OpenSSF model-signing,
mlwarden.supplychain) covers the same per-file SHA-256 digests, so a version is intact when the signature
verifies, its statement names exactly the stored manifest, and every blob still hashes to its digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mlwarden.domain.digests import Digest
from mlwarden.errors import IntegrityError, MlwardenError, UsageError
from mlwarden.service.context import ServiceContext
from mlwarden.service.model_store import ModelVersion
from mlwarden.store.blobs import BlobStore
from mlwarden.supplychain.signing import FileDigest, digest_model, signed_digests


def manifest_digest(files: Sequence[dict[str, Any]]) -> str:
    entries = sorted(({"path": f["path"], "sha256": f["sha256"], "size": int(f["size"])} for f in files), key=_path)
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _path(entry: dict[str, Any]) -> str:
    return str(entry["path"])


def store_files(blobs: BlobStore, path: Path) -> list[dict[str, Any]]:
    """Put a model file (or every file of a model folder) into the blob store; return the manifest."""
    if not path.exists():
        raise UsageError(f"{path} does not exist", hint="name a model file or folder")
    files = []
    for entry in digest_model(path):
        source = path if path.is_file() else path.joinpath(*PurePosixPath(entry.path).parts)
        with source.open("rb") as stream:
            stored = blobs.put_stream(stream)
        if stored.hex != entry.sha256:
            raise IntegrityError(f"{source} changed while it was being registered", hint="register it again")
        name = path.name if path.is_file() else entry.path  # a lone file is "." in its signature
        files.append({"path": name, "sha256": entry.sha256, "size": blobs.size(stored)})
    return sorted(files, key=_path)


def manifest_of_blob(blobs: BlobStore, name: str, digest: Digest) -> list[dict[str, Any]]:
    """The manifest of a one-file model already in the blob store (a run's artifact)."""
    return [{"path": name, "sha256": digest.hex, "size": blobs.size(digest)}]


def problems(ctx: ServiceContext, version: ModelVersion) -> list[str]:
    """What is wrong with a version's signature and files (nothing, for an intact version)."""
    from mlwarden.service.model_keys import model_public_key

    found: list[str] = []
    try:
        signed = signed_digests(version.signature, model_public_key(ctx))
    except MlwardenError as exc:
        return [f"signature: {exc}"]
    if _pairs(signed) != _expected_pairs(version):
        found.append("signature: the signed files are not the version's files")
    if manifest_digest(version.files) != version.digest:
        found.append("digest: the version's manifest does not match its digest")
    for entry in version.files:
        found += _blob_problems(ctx.blobs, entry)
    return found


def _pairs(signed: Sequence[FileDigest]) -> set[tuple[str, str]]:
    return {(f.path, f.sha256) for f in signed}


def _expected_pairs(version: ModelVersion) -> set[tuple[str, str]]:
    """What the signature must name: a lone model file is "." there (the OpenSSF format's convention)."""
    if version.layout == "file":
        return {(".", f["sha256"]) for f in version.files}
    return {(f["path"], f["sha256"]) for f in version.files}


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _blob_problems(blobs: BlobStore, entry: dict[str, Any]) -> list[str]:
    digest = Digest("sha256", entry["sha256"])
    try:
        blobs.copy_to(digest, _Discard())  # type: ignore[arg-type]  # copy_to re-hashes what it reads
    except MlwardenError as exc:
        return [f"file {entry['path']}: {exc}"]
    return []


def materialize(ctx: ServiceContext, version: ModelVersion, dest: Path) -> Path:
    """Write a version's files under ``dest`` (each re-hashed on the way); return the model's path."""
    from mlwarden.service.model_keys import model_public_key
    from mlwarden.supplychain.signing import verify_model

    write_files(ctx.blobs, version.files, dest)
    model_path = model_path_in(dest, version.layout, version.files)
    verify_model(model_path, version.signature, model_public_key(ctx))
    return model_path


def model_path_in(folder: Path, layout: str, files: Sequence[dict[str, Any]]) -> Path:
    """Where the model is once its files sit in ``folder``: its one file, or the folder itself."""
    return folder / files[0]["path"] if layout == "file" else folder


def write_files(blobs: BlobStore, files: Sequence[dict[str, Any]], dest: Path) -> None:
    """Copy each file out of the blob store (re-hashed on the way) to its place under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in files:
        target = dest.joinpath(*_safe_parts(entry["path"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            blobs.copy_to(Digest("sha256", entry["sha256"]), out)


def _safe_parts(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise IntegrityError(f"the version names an unsafe file path {path!r}", hint="run `mlwarden audit verify`")
    return parts
