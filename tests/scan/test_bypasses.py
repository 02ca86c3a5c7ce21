"""One generated file per published bypass class (docs/scanner.md lists them): every one is caught."""

from __future__ import annotations

import base64
import struct

import pytest

from mlwarden.scan import Severity, Verdict, scan_bytes
from tests.scan import craft as c

FLAGGED = {Verdict.UNSAFE, Verdict.MALICIOUS}


def codes(data: bytes) -> set[str]:
    return {f.code for f in scan_bytes(data).findings}


# -- deny-list gaps: globals no deny-list had; the allow-list catches them anyway --------------------------

GAPS = [
    ("pip", "main"), ("bdb", "Bdb.run"), ("cProfile", "run"), ("runpy", "_run_code"),
    ("_posixsubprocess", "fork_exec"), ("multiprocessing.util", "spawnv_passfds"),
    ("torch._inductor.codecache", "compile_file"), ("torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("code", "InteractiveInterpreter.runcode"), ("some_package_nobody_lists", "run"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "name"), GAPS, ids=[f"{m}.{n}" for m, n in GAPS])
def test_deny_list_gap_is_flagged(module: str, name: str) -> None:
    for proto in (0, 2, 4):
        verdict = scan_bytes(c.call(module, name, c.s("id"), proto=proto))
        assert verdict.verdict in FLAGGED
        assert any(f"{module}.{name}" in f.globals for f in verdict.findings)


def test_unknown_global_is_unsafe_not_malicious() -> None:
    assert scan_bytes(c.call("some_package_nobody_lists", "run")).verdict is Verdict.UNSAFE


# -- trampolines: a harmless-looking callable that reaches any other ---------------------------------------

TRAMPOLINES = [
    ("pkgutil", "resolve_name"),
    ("pydoc", "locate"),
    ("operator", "attrgetter"),
    ("inspect", "getattr_static"),
]


@pytest.mark.parametrize(("module", "name"), TRAMPOLINES, ids=[f"{m}.{n}" for m, n in TRAMPOLINES])
def test_trampoline_chain_is_malicious(module: str, name: str) -> None:
    # module.name('os:system') -> f; f('id')
    data = c.PROTO4 + c.sglob(module, name) + c.s("os:system") + c.TUPLE1 + c.REDUCE + c.s("id")
    data += c.TUPLE1 + c.REDUCE + c.STOP
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.MALICIOUS
    assert "computed-callable" in {f.code for f in verdict.findings}
    assert any(f.chain and "('id')" in f.chain for f in verdict.findings)


# -- the opcode reader: memo, STACK_GLOBAL, FRAME --------------------------------------------------------------


def test_stack_global_fed_through_the_memo() -> None:
    data = b"Vos\np0\n0Vsystem\np1\n0g0\ng1\n\x93(Vid\ntR."
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


def test_re_memoization_overwrites_a_benign_name() -> None:
    # memo 0 = 'collections', memo 1 = 'OrderedDict', then both keys are re-PUT with os/system
    data = c.PROTO4 + c.s("collections") + c.put(0) + c.s("OrderedDict") + c.put(1) + b"00"
    data += c.s("os") + c.put(0) + c.s("system") + c.put(1) + b"00" + c.get(0) + c.get(1) + c.STACK_GLOBAL
    data += c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.MALICIOUS and "os.system" in verdict.globals


def test_stack_global_with_non_string_arguments() -> None:
    # the module name is the result of a call: only known at load time
    data = c.PROTO4 + c.sglob("builtins", "str") + c.s("os") + c.TUPLE1 + c.REDUCE + c.s("system") + c.STACK_GLOBAL
    data += c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    assert "computed-global" in codes(data)
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


@pytest.mark.parametrize("length", [0, 1, 5, 9])
def test_frame_length_divergence_does_not_desync(length: int) -> None:
    body = c.sglob("os", "system") + c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    assert scan_bytes(c.frame(body, length)).verdict is Verdict.MALICIOUS


def test_frame_longer_than_the_file_is_malformed() -> None:
    body = c.s("x") + c.STOP
    assert "malformed-pickle" in codes(c.frame(body, 10_000))


def test_truncated_stream_is_never_clean() -> None:
    data = c.PROTO4 + c.s("a") + c.s("b")  # no STOP
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.UNSAFE and "malformed-pickle" in {f.code for f in verdict.findings}


def test_what_ran_before_a_parse_error_still_counts() -> None:
    data = c.call("os", "system", c.s("id"))[:-1] + c.get(99) + c.STOP  # memo 99 never stored
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"(S'id'\nios\nsystem\n.", id="INST"),
        pytest.param(b"(cos\nsystem\nS'id'\no.", id="OBJ"),
        pytest.param(c.PROTO4 + c.sglob("os", "system") + c.EMPTY_TUPLE + b"\x81" + c.STOP, id="NEWOBJ"),
        pytest.param(
            c.PROTO4 + c.sglob("os", "system") + c.EMPTY_TUPLE + c.EMPTY_DICT + b"\x92" + c.STOP, id="NEWOBJ_EX"
        ),
    ],
)
def test_every_call_opcode(data: bytes) -> None:
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


def test_ext_codes_are_unsafe() -> None:
    data = b"\x80\x02\x82\x05(S'id'\ntR."
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.UNSAFE and "extension-code" in {f.code for f in verdict.findings}


def test_build_on_an_imported_module() -> None:
    data = c.PROTO4 + c.sglob("torch", "_utils") + c.EMPTY_DICT + c.s("_rebuild_tensor") + c.s("eval") + b"s"
    data += c.BUILD + c.STOP
    assert "mutates-import" in codes(data)


def test_persistent_id_objects_cannot_be_called() -> None:
    data = c.PROTO4 + c.s("x") + b"Q" + c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


# -- stacked pickles and legacy PyTorch ------------------------------------------------------------------------


def test_stacked_pickle_after_a_benign_one() -> None:
    data = c.PROTO4 + b"]" + c.STOP + c.call("os", "system", c.s("id"))
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


def legacy(main: bytes, keys: bytes) -> bytes:
    magic = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + c.STOP
    return magic + b"\x80\x02M\xe9\x03." + b"\x80\x02}." + main + keys


def test_legacy_torch_keys_pickle_is_scanned() -> None:
    data = legacy(b"\x80\x02}.", c.call("os", "system", c.s("id"), proto=2))
    assert scan_bytes(data).verdict is Verdict.MALICIOUS


def test_legacy_torch_magic_computed_by_eval() -> None:
    magic = c.call("builtins", "eval", c.s("0x1950A86A20F9469CFC6C"), proto=2)
    assert scan_bytes(magic + b"\x80\x02M\xe9\x03.").verdict is Verdict.MALICIOUS


def test_legacy_torch_storages_are_walked_and_a_trailing_pickle_caught() -> None:
    pid = c.MARK + c.s("storage") + c.glob("torch", "FloatStorage") + c.s("k0") + c.s("cpu") + b"K\x02" + c.TUPLE
    main = b"\x80\x02" + c.MARK + c.s("w") + pid + b"Q" + b"d" + c.STOP
    keys = b"\x80\x02" + c.MARK + c.s("k0") + b"l" + c.STOP
    storage = struct.pack("<q", 2) + b"\x80\x04" * 4  # 2 floats that look like a pickle start
    clean = legacy(main, keys) + storage
    assert scan_bytes(clean).verdict is Verdict.CLEAN
    assert scan_bytes(clean + c.call("os", "system", c.s("id"))).verdict is Verdict.MALICIOUS


# -- ZIP tricks that PyTorch tolerates ---------------------------------------------------------------------


EVIL = c.call("builtins", "eval", c.s("print(1)"))


@pytest.mark.parametrize("flags", [0x1, 0x20, 0x40, 0x8])
def test_zip_flag_bits(flags: int) -> None:
    assert scan_bytes(c.raw_zip("archive/data.pkl", EVIL, flags=flags)).verdict is Verdict.MALICIOUS


def test_zip_crc_mismatch() -> None:
    assert scan_bytes(c.raw_zip("archive/data.pkl", EVIL, crc=0xDEADBEEF)).verdict is Verdict.MALICIOUS


def test_zip_local_and_central_names_differ() -> None:
    data = c.raw_zip("archive/data.pkl", EVIL, local_name="archive/datap.kl")
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.MALICIOUS
    assert any(f.code == "zip-anomaly" and f.severity is Severity.INFO for f in verdict.findings)


def test_zip_entry_missing_from_the_central_directory() -> None:
    assert scan_bytes(c.raw_zip("x.pkl", EVIL, in_directory=False)).verdict is Verdict.MALICIOUS


def test_zip_with_data_prepended() -> None:
    assert scan_bytes(c.raw_zip("x.pkl", EVIL, prefix=b"\x00" * 100)).verdict is Verdict.MALICIOUS


def test_really_encrypted_entry_is_unverifiable() -> None:
    data = c.raw_zip("weights.bin", b"\x13" * 12 + b"ciphertext!!", flags=0x1)
    assert scan_bytes(data).verdict is Verdict.UNVERIFIABLE


# -- files routed by extension ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "README.md", "model.safetensors", "data.txt"])
def test_content_decides_not_the_name(name: str) -> None:
    assert scan_bytes(EVIL, name=name).verdict is Verdict.MALICIOUS
    assert scan_bytes(c.zip_bytes({name: EVIL})).verdict is Verdict.MALICIOUS


# -- nested pickles: raw, base64, hex --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(c.b(EVIL), id="raw-bytes"),
        pytest.param(c.s(base64.b64encode(EVIL).decode()), id="base64"),
        pytest.param(c.s(EVIL.hex()), id="hex"),
        pytest.param(c.s("cos\nsystem\n(S'id'\ntR."), id="protocol-0-text"),
    ],
)
def test_nested_pickle_in_a_string(payload: bytes) -> None:
    outer = c.PROTO4 + c.EMPTY_DICT + c.s("blob") + payload + b"s" + c.STOP
    verdict = scan_bytes(outer)
    assert verdict.verdict is Verdict.MALICIOUS
    assert any("@" in f.location for f in verdict.findings)


def test_nested_zip_in_bytes() -> None:
    outer = c.PROTO4 + c.b(c.zip_bytes({"archive/data.pkl": EVIL})) + c.STOP
    assert scan_bytes(outer).verdict is Verdict.MALICIOUS


def test_text_that_merely_starts_like_a_pickle_is_not_a_finding() -> None:
    outer = c.PROTO4 + c.s("cat\ndog\nmouse and more text") + c.STOP
    assert scan_bytes(outer).verdict is Verdict.CLEAN


# -- limits: depth, size, expansion ------------------------------------------------------------------------


def test_nesting_depth_limit() -> None:
    data = EVIL
    for _ in range(12):
        data = c.zip_bytes({"inner.zip": data})
    verdict = scan_bytes(data)
    assert verdict.verdict is Verdict.UNVERIFIABLE
    assert "limit-exceeded" in {f.code for f in verdict.findings}


def test_zip_bomb_by_ratio() -> None:
    import zipfile

    size = 80 << 20  # a pickle whose one bytes payload is 80 MiB of zeros: the scanner must read through it
    payload = c.PROTO4 + b"\x8e" + struct.pack("<Q", size) + bytes(size) + c.STOP
    bomb = c.zip_bytes({"data.pkl": payload}, method=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 200_000
    verdict = scan_bytes(bomb)
    assert verdict.verdict is Verdict.UNVERIFIABLE
    assert any("ratio" in f.message for f in verdict.findings)


def test_overlapping_entries_are_a_zip_bomb() -> None:
    one = c.raw_zip("a.pkl", EVIL)
    cd_start = one.index(b"PK\x01\x02")
    eocd = one.index(b"PK\x05\x06")
    cd = one[cd_start:eocd]
    twice = one[:cd_start] + cd + cd.replace(b"a.pkl", b"b.pkl")
    twice += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, 2 * len(cd), cd_start, 0)
    assert "zip-bomb" in codes(twice)
