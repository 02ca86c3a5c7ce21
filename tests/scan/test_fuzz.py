"""Fuzzing: random and mutated pickles never crash the scanner and never pass with a forbidden global."""

from __future__ import annotations

import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.scan import GlobalRef, ScanPolicy, Verdict, scan_bytes
from tests.scan import craft as c

POLICY = ScanPolicy()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPCODES = [
    bytes([op])
    for op in b"()0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}].\x80\x81\x82\x85\x86\x87\x88\x89\x8c\x8e\x93\x94\x95"
]
FORBIDDEN = [("os", "system"), ("no_such_pkg", "thing"), ("builtins", "getattr"), ("sklearn.datasets", "fetch_openml")]
BENIGN = [
    pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True), "c": {1, 2}}, protocol=p)
    for p in range(pickle.HIGHEST_PROTOCOL + 1)
]


def never_crashes(data: bytes) -> Verdict:
    verdict = scan_bytes(data)
    assert not any(f.code == "scanner-error" for f in verdict.findings), verdict.findings
    if verdict.verdict is Verdict.CLEAN:  # a clean verdict never hides a global the policy does not allow
        for name in verdict.globals:
            assert POLICY.allowed_role(GlobalRef.parse(name)) is not None, name
    return verdict.verdict


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    never_crashes(data)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(OPCODES), st.binary(max_size=6)), max_size=60))
def test_random_opcode_streams(parts: list[bytes]) -> None:
    never_crashes(b"".join(parts))


@FUZZ
@given(st.sampled_from(FORBIDDEN), st.integers(0, 4), st.binary(max_size=200))
def test_a_forbidden_global_is_never_clean(target: tuple[str, str], proto: int, tail: bytes) -> None:
    module, name = target
    head = (b"\x80" + bytes([proto]) if proto >= 2 else b"") + (
        c.sglob(module, name) if proto >= 4 else c.glob(module, name)
    )
    assert never_crashes(head + tail) is not Verdict.CLEAN


@FUZZ
@given(st.sampled_from(BENIGN), st.data())
def test_mutated_pickles(original: bytes, data: st.DataObject) -> None:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    never_crashes(bytes(mutated))


@FUZZ
@given(st.sampled_from(BENIGN), st.sampled_from(FORBIDDEN), st.data())
def test_forbidden_global_spliced_into_a_benign_pickle(
    original: bytes, target: tuple[str, str], data: st.DataObject
) -> None:
    # GLOBAL + POP is a no-op for the result, but the import (and its side effects) still happens
    at = data.draw(st.integers(0, len(original) - 1))
    start = 2 if original[:1] == b"\x80" else 0
    at = max(start, at)
    spliced = original[:at] + c.glob(*target) + b"0" + original[at:]
    verdict = scan_bytes(spliced)
    if f"{target[0]}.{target[1]}" in verdict.globals:
        assert verdict.verdict is not Verdict.CLEAN


MAGICS = [
    b"PK\x03\x04", b"PK\x05\x06", b"7z\xbc\xaf\x27\x1c\x00\x04", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00",
    b"GGUF\x03\x00\x00\x00", b"\x1f\x8b\x08", b"BZh91AY&SY", b"\xfd7zXZ\x00", b"\x78\x9c", b"\x89HDF\r\n\x1a\n",
    b"\x08\x01\x12", b"\x08\x07\x12", b"\x0a\x05", b"\x10\x00\x00\x00\x00\x00\x00\x00{",
]  # fmt: skip


@FUZZ
@given(st.sampled_from(MAGICS), st.binary(max_size=300))
def test_every_format_survives_garbage(magic: bytes, tail: bytes) -> None:
    never_crashes(magic + tail)


@FUZZ
@given(st.data())
def test_mutated_archives(data: st.DataObject) -> None:
    archive = data.draw(st.sampled_from([ARCHIVE, SEVENZIP]))
    mutated = bytearray(archive)
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    never_crashes(bytes(mutated))


ARCHIVE = c.zip_bytes({"archive/data.pkl": BENIGN[4], "archive/data/0": bytes(8)})
SEVENZIP = c.sevenzip("model.pkl", BENIGN[4])
