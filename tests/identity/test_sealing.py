"""Sealed secrets: AES-256-GCM under a 0600 key file, bound to purpose and subject."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mlwarden.errors import ConfigError, IntegrityError, NotFound
from mlwarden.identity.sealing import KEY_BYTES, Sealer, load_sealer


def test_seal_and_open_round_trip_with_fresh_nonces(tmp_path: Path) -> None:
    sealer = load_sealer(tmp_path / "keys" / "secrets.key", create=True)
    one = sealer.seal(b"secret bytes", purpose="mfa.totp", subject="usr_1")
    two = sealer.seal(b"secret bytes", purpose="mfa.totp", subject="usr_1")
    assert one != two and one.startswith("v1:")
    assert b"secret bytes".hex() not in one and "secret" not in one
    assert sealer.open(one, purpose="mfa.totp", subject="usr_1") == b"secret bytes"


def test_a_sealed_secret_moved_to_another_subject_or_purpose_does_not_open(tmp_path: Path) -> None:
    sealer = load_sealer(tmp_path / "secrets.key", create=True)
    sealed = sealer.seal(b"alice's secret", purpose="mfa.totp", subject="usr_alice")
    with pytest.raises(IntegrityError, match="does not open") as caught:
        sealer.open(sealed, purpose="mfa.totp", subject="usr_mallory")
    assert sealed not in caught.value.message
    with pytest.raises(IntegrityError):
        sealer.open(sealed, purpose="other", subject="usr_alice")
    # Length-prefixed associated data: shifting a character between purpose and subject does not help.
    shifted = sealer.seal(b"x", purpose="ab", subject="c")
    with pytest.raises(IntegrityError):
        sealer.open(shifted, purpose="a", subject="bc")


def test_altered_malformed_or_foreign_ciphertexts_do_not_open(tmp_path: Path) -> None:
    sealer = load_sealer(tmp_path / "secrets.key", create=True)
    sealed = sealer.seal(b"0123456789", purpose="p", subject="s")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    other = Sealer(os.urandom(KEY_BYTES))
    for bad in (flipped, "v2:" + sealed[3:], "v1:", "v1:!!!!", "nonsense", "v1:" + "A" * 5000):
        with pytest.raises(IntegrityError):
            sealer.open(bad, purpose="p", subject="s")
    with pytest.raises(IntegrityError):
        other.open(sealed, purpose="p", subject="s")


def test_key_file_is_created_once_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secrets.key"
    with pytest.raises(NotFound, match="does not exist"):
        load_sealer(path)
    sealed = load_sealer(path, create=True).seal(b"s", purpose="p", subject="u")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == KEY_BYTES
    before = path.read_bytes()
    assert load_sealer(path, create=True).open(sealed, purpose="p", subject="u") == b"s"
    assert path.read_bytes() == before  # never replaced
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temporary file left


def test_concurrent_creation_yields_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    sealers: list[Sealer] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        sealers.append(load_sealer(path, create=True))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sealed = sealers[0].seal(b"shared", purpose="p", subject="u")
    assert all(s.open(sealed, purpose="p", subject="u") == b"shared" for s in sealers)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secrets.key"
    load_sealer(path, create=True)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="accessible by group or others") as caught:
        load_sealer(path, create=True)
    assert "chmod 600" in caught.value.hint


def test_a_key_of_the_wrong_size_or_kind_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    fd = os.open(short, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"too short")
    os.close(fd)
    with pytest.raises(ConfigError, match="does not hold 32 bytes"):
        load_sealer(short)
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_sealer(fifo)


def test_a_dangling_symlink_is_not_followed_to_create_a_key(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "planted.key"
    target.parent.mkdir()
    link = tmp_path / "secrets.key"
    link.symlink_to(target)
    with pytest.raises(NotFound):
        load_sealer(link, create=True)
    assert not target.exists()
