"""Every non-pickle format: a benign file is clean, the published attack on it is caught."""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import tarfile
from pathlib import Path

import pytest

from mlwarden.scan import Verdict, scan_bytes, scan_file
from tests.scan import craft as c

EVIL = c.call("os", "system", c.s("id"))
BENIGN = c.PROTO4 + c.EMPTY_DICT + c.s("w") + b"K\x01" + b"s" + c.STOP


def verdict_of(data: bytes) -> Verdict:
    return scan_bytes(data).verdict


# -- safetensors ---------------------------------------------------------------------------------------------


def safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_safetensors_clean_and_malformed() -> None:
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"format": "pt"}}
    assert verdict_of(safetensors(good, bytes(8))) is Verdict.CLEAN
    overlap = {**good, "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    assert verdict_of(safetensors(overlap, bytes(8))) is Verdict.UNSAFE
    wrong_size = {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
    assert verdict_of(safetensors(wrong_size, bytes(8))) is Verdict.UNSAFE
    hidden = {**good, "__metadata__": {"x": EVIL.hex()}}
    assert verdict_of(safetensors(hidden, bytes(8))) is Verdict.UNSAFE


# -- GGUF chat templates ---------------------------------------------------------------------------------------

BENIGN_TEMPLATE = (
    "{%- set ns = namespace(system='') %}{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{{ message['content'] | trim }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
ATTACKS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum|attr('\\x5f\\x5fglobals\\x5f\\x5f') }}",
]


def test_gguf_benign_template_is_clean() -> None:
    assert (
        verdict_of(c.gguf({"general.architecture": "llama", "tokenizer.chat_template": BENIGN_TEMPLATE}))
        is Verdict.CLEAN
    )


@pytest.mark.parametrize("template", ATTACKS)
def test_gguf_template_injection(template: str) -> None:
    data = c.gguf({"general.name": "x", "tokenizer.chat_template": template, "general.file_type": 1})
    assert verdict_of(data) in {Verdict.UNSAFE, Verdict.MALICIOUS}


# -- ONNX external data ----------------------------------------------------------------------------------------


def onnx(location: str) -> bytes:
    entry = c.pb(1, "location") + c.pb(2, location)
    tensor = c.pb(1, 1) + c.pb(8, "w") + c.pb(13, entry) + c.pb(14, 1)
    node = c.pb(4, "Relu")
    graph = c.pb(1, node) + c.pb(5, tensor)
    return c.pb(1, 8) + c.pb(2, "pytorch") + c.pb(7, graph)


def test_onnx_external_data() -> None:
    assert verdict_of(onnx("weights.bin")) is Verdict.CLEAN
    for bad in ("../../etc/passwd", "/etc/shadow", "C:\\Windows\\win.ini", "sub/../../x"):
        assert verdict_of(onnx(bad)) is Verdict.MALICIOUS, bad


# -- TensorFlow SavedModel ---------------------------------------------------------------------------------------


def saved_model(*ops: str, in_function: bool = False) -> bytes:
    nodes = b"".join(c.pb(1, c.pb(1, f"n{i}") + c.pb(2, op)) for i, op in enumerate(ops))
    if in_function:
        function = c.pb(3, c.pb(1, "f") + c.pb(2, ops[0]))
        graph = c.pb(1, c.pb(1, "c") + c.pb(2, "Const")) + c.pb(2, c.pb(1, function))
    else:
        graph = nodes
    return c.pb(1, 1) + c.pb(2, c.pb(2, graph))


def test_savedmodel_ops() -> None:
    assert verdict_of(saved_model("Const", "MatMul", "SaveV2", "RestoreV2")) is Verdict.CLEAN
    assert verdict_of(saved_model("Const", "PyFunc")) is Verdict.MALICIOUS
    assert verdict_of(saved_model("EagerPyFunc", in_function=True)) is Verdict.MALICIOUS
    assert verdict_of(saved_model("ReadFile")) is Verdict.UNSAFE


# -- Keras --------------------------------------------------------------------------------------------------

DENSE = {"class_name": "Dense", "module": "keras.layers", "config": {"units": 2, "activation": "relu"}}


def keras_archive(*layers: dict[str, object]) -> bytes:
    config = {"class_name": "Sequential", "module": "keras", "config": {"layers": list(layers)}}
    members = {"metadata.json": b"{}", "config.json": json.dumps(config).encode(), "model.weights.h5": b"\x89HDF"}
    return c.zip_bytes(members)


def test_keras_archive() -> None:
    assert verdict_of(keras_archive(DENSE)) is Verdict.CLEAN
    lam = {"class_name": "Lambda", "module": "keras.layers", "config": {"function": {"class_name": "__lambda__"}}}
    assert verdict_of(keras_archive(DENSE, lam)) is Verdict.UNSAFE
    injected = {"class_name": "system", "module": "os", "config": {}}
    assert verdict_of(keras_archive(DENSE, injected)) is Verdict.MALICIOUS


def test_keras_h5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    target = tmp_path / "model.h5"
    for layers, expected in (
        ([DENSE], Verdict.CLEAN),
        ([DENSE, {"class_name": "Lambda", "config": {}}], Verdict.UNSAFE),
    ):
        with h5py.File(target, "w") as f:
            f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": layers}})
            f.create_dataset("w", data=[1.0, 2.0])
        assert scan_file(target).verdict is expected


def test_hdf5_without_h5py_is_unverifiable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h5py = pytest.importorskip("h5py")
    target = tmp_path / "model.h5"
    with h5py.File(target, "w") as f:
        f.attrs["model_config"] = "{}"
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert scan_file(target).verdict is Verdict.UNVERIFIABLE


# -- containers and compression ----------------------------------------------------------------------------------


def test_7z_archives() -> None:
    assert verdict_of(c.sevenzip("model.pkl", BENIGN)) is Verdict.CLEAN
    assert verdict_of(c.sevenzip("model.pkl", EVIL)) is Verdict.MALICIOUS


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_archives(mode: str) -> None:
    assert verdict_of(tar_bytes({"a/model.pkl": BENIGN}, mode)) is Verdict.CLEAN
    assert verdict_of(tar_bytes({"a/model.pkl": BENIGN, "b/x.bin": EVIL}, mode)) is Verdict.MALICIOUS


def test_legacy_torch_tar() -> None:
    storage_args = c.MARK + c.s("k") + c.s("cpu") + c.glob("torch", "FloatStorage") + c.TUPLE
    storages = b"\x80\x02K\x01." + b"\x80\x02" + storage_args + c.STOP + struct.pack("<q", 2) + bytes(8)
    members = {"sys_info": b"\x80\x02}.", "pickle": BENIGN, "storages": storages, "tensors": b"\x80\x02K\x00."}
    assert verdict_of(tar_bytes(members)) is Verdict.CLEAN
    assert verdict_of(tar_bytes({**members, "pickle": EVIL})) is Verdict.MALICIOUS


def test_gzip_and_unsupported_compression() -> None:
    assert verdict_of(gzip.compress(EVIL)) is Verdict.MALICIOUS
    assert verdict_of(gzip.compress(BENIGN)) is Verdict.CLEAN
    assert verdict_of(b"\x04\x22\x4d\x18" + bytes(40)) is Verdict.UNVERIFIABLE


def test_npy_object_array_with_a_payload() -> None:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    assert verdict_of(npy + EVIL) is Verdict.MALICIOUS
    assert verdict_of(npy + b"garbage") is Verdict.UNSAFE


def test_random_bytes_and_images_are_not_models() -> None:
    assert verdict_of(b"\x89PNG\r\n\x1a\n" + bytes(100)) is Verdict.NOT_A_MODEL
    assert verdict_of(b"hello world, this is text\n") is Verdict.NOT_A_MODEL
    assert verdict_of(b"") is Verdict.NOT_A_MODEL
