"""Content-addressed blob store: invariant 2 (store-computed digests, every read re-verified)."""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import stat
from pathlib import Path

import pytest

from mlwarden.domain.digests import Digest, Hasher
from mlwarden.errors import IntegrityError, NotFound, UsageError
from mlwarden.store import blobs
from mlwarden.store.blobs import BlobProblem, BlobStore, LocalBlobStore
from mlwarden.store.blobs import local as local_module

SMALL_CHUNK = 1024


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", chunk_size=SMALL_CHUNK)


def _tamper(path: Path) -> None:
    """Flip one byte of a read-only blob, as an attacker with file access would."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


class ChunkCheckingStream(io.RawIOBase):
    """A stream that fails if anyone asks for more than ``limit`` bytes at once."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._src = io.BytesIO(data)
        self._limit = limit
        self.max_request = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert 0 < size <= self._limit, f"read({size}) would load too much at once"
        self.max_request = max(self.max_request, size)
        return self._src.read(size)


# -- Digest ------------------------------------------------------------------------------------------


def test_digest_text_round_trip() -> None:
    d = Digest.of_bytes(b"hello")
    assert str(d) == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert Digest.parse(str(d)) == d


def test_hasher_matches_of_bytes() -> None:
    h = Hasher()
    h.update(b"hel")
    h.update(b"lo")
    assert h.digest() == Digest.of_bytes(b"hello")
    assert h.size == 5


GOOD_HEX = "a" * 64


@pytest.mark.parametrize(
    "text",
    [
        "",
        GOOD_HEX,  # bare hex, no algorithm
        "sha512:" + GOOD_HEX,
        "SHA256:" + GOOD_HEX,
        "md5:" + "a" * 32,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,  # uppercase: one canonical spelling per digest
        "sha256:" + "g" * 64,
        "sha256:../../etc/passwd",
        "sha256:" + "../" * 21 + "a",
        "sha256:" + "a" * 63 + "\n",
        " sha256:" + GOOD_HEX,
        "sha256:" + GOOD_HEX + " ",
        "sha256:" + "\u0660" * 64,  # Arabic-Indic digits are not hex
        "sha256:" + "a" * 10_000,
    ],
)
def test_digest_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError) as info:
        Digest.parse(text)
    assert info.value.hint


def test_digest_constructor_validates() -> None:
    with pytest.raises(UsageError):
        Digest("sha256", "../" + "a" * 61)


# -- round trips -------------------------------------------------------------------------------------


def test_local_store_satisfies_protocol(store: LocalBlobStore) -> None:
    as_protocol: BlobStore = store
    assert as_protocol is store
    assert set(blobs.__all__) >= {"BlobStore", "BlobVerifyReport", "LocalBlobStore"}


def test_put_get_bytes(store: LocalBlobStore) -> None:
    d = store.put_bytes(b"some content")
    assert d == Digest.of_bytes(b"some content")
    assert store.get_bytes(d) == b"some content"
    assert store.exists(d)
    assert store.size(d) == len(b"some content")


def test_empty_blob(store: LocalBlobStore) -> None:
    d = store.put_bytes(b"")
    assert store.get_bytes(d) == b""


def test_put_stream_larger_than_chunk_reads_in_chunks(store: LocalBlobStore) -> None:
    data = os.urandom(SMALL_CHUNK * 5 + 17)
    stream = ChunkCheckingStream(data, limit=SMALL_CHUNK)
    d = store.put_stream(stream)  # type: ignore[arg-type]
    assert stream.max_request == SMALL_CHUNK
    assert d == Digest.of_bytes(data)
    out = io.BytesIO()
    store.copy_to(d, out)
    assert out.getvalue() == data


def test_put_stream_larger_than_default_chunk(tmp_path: Path) -> None:
    default_store = LocalBlobStore(tmp_path / "b")
    data = os.urandom(local_module.CHUNK_SIZE * 2 + 1)
    d = default_store.put_stream(io.BytesIO(data))
    assert default_store.get_bytes(d) == data


def test_copy_to_spills_large_blob_to_disk(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "SPOOL_MAX", SMALL_CHUNK)
    data = os.urandom(SMALL_CHUNK * 3)
    d = store.put_bytes(data)
    out = io.BytesIO()
    store.copy_to(d, out)
    assert out.getvalue() == data


def test_layout_and_read_only(store: LocalBlobStore) -> None:
    d = store.put_bytes(b"layout")
    path = store.root / "sha256" / d.hex[:2] / d.hex[2:]
    assert store.path_of(d) == path
    assert path.read_bytes() == b"layout"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list(store.iter_digests()) == [d]


def test_dedup_same_content_one_file(store: LocalBlobStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_stream(io.BytesIO(b"same"))
    assert first == second
    files = [p for p in (store.root / "sha256").rglob("*") if p.is_file()]
    assert files == [store.path_of(first)]
    assert list((store.root / "tmp").iterdir()) == []


def test_dedup_onto_tampered_blob_is_an_integrity_error(store: LocalBlobStore) -> None:
    d = store.put_bytes(b"original")
    _tamper(store.path_of(d))
    with pytest.raises(IntegrityError, match=d.hex):
        store.put_bytes(b"original")
    assert list((store.root / "tmp").iterdir()) == []


def test_digest_is_computed_by_the_store(store: LocalBlobStore) -> None:
    for method in (
        LocalBlobStore.put_bytes,
        LocalBlobStore.put_stream,
        BlobStore.put_bytes,
        BlobStore.put_stream,
    ):
        params = list(inspect.signature(method).parameters)
        assert params == ["self", params[1]] and "digest" not in params[1]
    d = store.put_bytes(b"x")
    assert d.hex == hashlib.sha256(b"x").hexdigest()


def test_iter_digests_sorted(store: LocalBlobStore) -> None:
    digests = [store.put_bytes(bytes([i])) for i in range(20)]
    assert list(store.iter_digests()) == sorted(digests)


# -- failures ----------------------------------------------------------------------------------------


def test_missing_blob_not_found(store: LocalBlobStore) -> None:
    d = Digest.of_bytes(b"never stored")
    assert not store.exists(d)
    with pytest.raises(NotFound):
        store.get_bytes(d)
    with pytest.raises(NotFound):
        store.copy_to(d, io.BytesIO())
    with pytest.raises(NotFound):
        store.size(d)


def test_tampered_blob_get_bytes_and_verify(store: LocalBlobStore) -> None:
    good = store.put_bytes(b"good")
    bad = store.put_bytes(b"will be tampered")
    _tamper(store.path_of(bad))
    with pytest.raises(IntegrityError, match=bad.hex):
        store.get_bytes(bad)
    assert store.get_bytes(good) == b"good"
    report = store.verify()
    assert report.checked == 2
    assert not report.ok
    assert [(b.digest, b.reason) for b in report.bad] == [(bad, BlobProblem.CONTENT_MISMATCH)]
    assert str(report.bad[0].reason) == "content mismatch"


def test_copy_to_tampered_blob_writes_nothing(store: LocalBlobStore) -> None:
    d = store.put_bytes(os.urandom(SMALL_CHUNK * 4))
    path = store.path_of(d)
    os.chmod(path, 0o644)
    with path.open("r+b") as f:  # damage the last chunk, after earlier chunks would have streamed
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 0xFF]))
    dst = io.BytesIO()
    with pytest.raises(IntegrityError, match=d.hex):
        store.copy_to(d, dst)
    assert dst.getvalue() == b""


def test_verify_clean_store_and_progress(store: LocalBlobStore) -> None:
    store.put_bytes(b"a" * 3000)
    store.put_bytes(b"b" * 10)
    seen: list[int] = []
    report = store.verify(progress=seen.append)
    assert report.ok
    assert (report.checked, report.checked_bytes) == (2, 3010)
    assert sum(seen) == 3010
    assert max(seen) <= SMALL_CHUNK


@pytest.mark.parametrize(
    "stray",
    [
        "notes.txt",  # at the root
        "sha256/README",  # inside the blob tree
        "sha256/ab/short",  # not a full digest name
        "sha256/" + "c" * 64,  # a blob name outside its fan-out directory
        "sha256/zz/" + "c" * 62,  # a fan-out directory that is not hex
        "sha256/ab/" + "C" * 62,  # uppercase
        "sha256/ab/cd/" + "e" * 62,  # one level too deep
        "other/" + "a" * 62,
    ],
)
def test_verify_reports_stray_files(store: LocalBlobStore, stray: str) -> None:
    d = store.put_bytes(b"legit")
    path = store.root / stray
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stray")
    report = store.verify()
    assert report.checked == 1
    assert [(b.digest, b.location, b.reason) for b in report.bad] == [(None, stray, BlobProblem.MISPLACED)]
    assert list(store.iter_digests()) == [d]


def test_symlink_at_blob_path_is_not_followed(store: LocalBlobStore, tmp_path: Path) -> None:
    secret = tmp_path / "outside"
    secret.write_bytes(b"outside the store")
    d = Digest.of_bytes(b"outside the store")
    link = store.path_of(d)
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    assert not store.exists(d)
    with pytest.raises(IntegrityError):
        store.get_bytes(d)
    report = store.verify()
    assert [(b.location, b.reason) for b in report.bad] == [(f"sha256/{d.hex[:2]}/{d.hex[2:]}", BlobProblem.MISPLACED)]


def test_verify_reports_unreadable(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    d = store.put_bytes(b"locked")

    def refuse(path: Path) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(local_module, "_open_regular", refuse)
    report = store.verify()
    assert [(b.digest, b.reason) for b in report.bad] == [(d, BlobProblem.UNREADABLE)]
    with pytest.raises(IntegrityError, match="unreadable"):
        store.get_bytes(d)


# -- crash safety ------------------------------------------------------------------------------------


def test_leftover_temp_file_is_ignored_and_cleaned(store: LocalBlobStore) -> None:
    d = store.put_bytes(b"committed")
    leftover = store.root / "tmp" / "put-crashed.partial"
    leftover.write_bytes(b"half a blob")
    old = leftover.stat().st_mtime - 7200
    os.utime(leftover, (old, old))
    fresh = store.root / "tmp" / "put-inflight.partial"
    fresh.write_bytes(b"being written")

    assert list(store.iter_digests()) == [d]
    report = store.verify()
    assert report.ok and report.checked == 1

    assert store.cleanup_temp(older_than_seconds=3600) == 1
    assert not leftover.exists()
    assert fresh.exists()  # a write in progress is left alone


def test_failed_write_leaves_no_blob_and_no_temp(store: LocalBlobStore) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError("source went away")

    with pytest.raises(OSError, match="went away"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list(store.iter_digests()) == []
    assert list((store.root / "tmp").iterdir()) == []
