"""Model formats of the registry: detection by content, safe round trips, and every refusal.

Every model is made here at test time; hostile files are written byte by byte and never executed.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlwarden.errors import InputError, MlwardenError
from mlwarden.registry.formats import (
    LoaderUnavailable,
    MalformedModel,
    ModelFormat,
    ModelRefused,
    detect_format,
    load_model,
    main_file,
    model_kind,
)
from mlwarden.registry.loaders import skops_refused
from mlwarden.registry.tensorfile import read_safetensors

# os.system('echo pwned') in pickle protocol 0: GLOBAL, MARK, STRING, TUPLE, REDUCE, STOP.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."


class Doubler(BaseEstimator):  # type: ignore[misc]
    """An estimator of this test module: no allow-list trusts its type."""

    def fit(self, X: Any, y: Any = None) -> Doubler:  # noqa: N803
        self.factor_ = 2.0
        return self


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(80, 4))  # noqa: N806
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def logreg(data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> LogisticRegression:
    return LogisticRegression().fit(*data)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def safetensors_bytes(tensors: dict[str, np.ndarray[Any, Any]], *, header: dict[str, Any] | None = None) -> bytes:
    """The documented layout, written by hand: length, JSON header padded to 8 bytes, tensor data."""
    codes = {"float32": "F32", "int64": "I64", "uint8": "U8"}
    body, entries, offset = b"", {}, 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        entries[name] = {
            "dtype": codes[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        body += raw
        offset += len(raw)
    text = json.dumps(header if header is not None else entries).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


def onnx_bytes() -> bytes:
    """A minimal ModelProto on the wire: ir_version 8 (field 1) and a graph named "g" (field 7)."""
    return b"\x08\x08\x3a\x03\x12\x01g"


def torch_zip_bytes(payload: bytes) -> bytes:
    """The layout of torch.save: ``<name>/data.pkl`` plus ``<name>/version``, stored uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model/data.pkl", payload)
        archive.writestr("model/version", b"3\n")
    return buffer.getvalue()


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any unpickling is a test failure: refusals must come before a loader is called."""
    import joblib

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a loader was called on a refused file")

    monkeypatch.setattr(joblib, "load", never)
    monkeypatch.setattr(pickle, "loads", never)
    monkeypatch.setattr(pickle, "load", never)


# -- detection ---------------------------------------------------------------------------------------------


def test_detects_each_format_by_content(tmp_path: Path, logreg: LogisticRegression) -> None:
    import joblib
    import skops.io as sio
    import xgboost as xgb

    sio.dump(logreg, tmp_path / "a")
    joblib.dump(logreg, tmp_path / "b")
    joblib.dump(logreg, tmp_path / "c", compress=3)
    joblib.dump(logreg, tmp_path / "d", compress=("gzip", 3))
    _write(tmp_path / "e", pickle.dumps({"weights": [1.0, 2.0]}))
    _write(tmp_path / "f", torch_zip_bytes(pickle.dumps({"w": 1}, protocol=2)))
    _write(tmp_path / "g", safetensors_bytes({"w": np.ones((2, 3), dtype=np.float32)}))
    _write(tmp_path / "h", onnx_bytes())
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(np.eye(4), label=[0, 1, 0, 1]), num_boost_round=2)
    booster.save_model(tmp_path / "i.json")
    booster.save_model(tmp_path / "j.ubj")
    _write(tmp_path / "k", b"tree\nversion=v4\nnum_class=1\n")
    _write(tmp_path / "l", b'{"not": "a model"}')
    _write(tmp_path / "m", b"just text\n")
    expected = {
        "a": ModelFormat.SKOPS,
        "b": ModelFormat.JOBLIB,
        "c": ModelFormat.JOBLIB,
        "d": ModelFormat.JOBLIB,
        "e": ModelFormat.PICKLE,
        "f": ModelFormat.TORCH,
        "g": ModelFormat.SAFETENSORS,
        "h": ModelFormat.ONNX,
        "i.json": ModelFormat.XGBOOST,
        "j.ubj": ModelFormat.XGBOOST,
        "k": ModelFormat.LIGHTGBM,
        "l": ModelFormat.UNKNOWN,
        "m": ModelFormat.UNKNOWN,
    }
    assert {name: detect_format(tmp_path / name) for name in expected} == expected


def test_a_renamed_file_is_detected_by_content(tmp_path: Path) -> None:
    renamed = _write(tmp_path / "model.onnx", pickle.dumps({"weights": [1.0]}))
    assert detect_format(renamed) is ModelFormat.PICKLE
    with pytest.raises(ModelRefused, match="as onnx: its content is pickle"):
        load_model(renamed, ModelFormat.ONNX)
    looks_safe = _write(tmp_path / "model.safetensors", MALICIOUS_PICKLE)
    assert detect_format(looks_safe) is ModelFormat.PICKLE


def test_a_directory_is_the_format_of_its_main_file(tmp_path: Path, logreg: LogisticRegression) -> None:
    import skops.io as sio

    single = tmp_path / "single"
    single.mkdir()
    _write(single / "weights.bin", safetensors_bytes({"w": np.arange(3, dtype=np.int64)}))
    _write(single / "config.json", b'{"hidden": 3}')
    assert detect_format(single) is ModelFormat.SAFETENSORS
    assert main_file(single) == single / "weights.bin"
    np.testing.assert_array_equal(load_model(single)["w"], [0, 1, 2])

    named = tmp_path / "named"
    named.mkdir()
    sio.dump(logreg, named / "model.skops")
    _write(named / "extra.pkl", pickle.dumps([1, 2]))
    assert detect_format(named) is ModelFormat.SKOPS

    several = tmp_path / "several"
    several.mkdir()
    sio.dump(logreg, several / "a.skops")
    _write(several / "b.pkl", pickle.dumps([1, 2]))
    (several / "link").symlink_to(named / "model.skops")  # links are not followed
    assert detect_format(several) is ModelFormat.DIRECTORY
    with pytest.raises(InputError, match="no single main model file") as caught:
        load_model(several)
    assert "a.skops, b.pkl" in str(caught.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty / "README", b"notes\n")
    assert detect_format(empty) is ModelFormat.UNKNOWN


# -- round trips -------------------------------------------------------------------------------------------


def test_logistic_regression_round_trips_via_skops_and_joblib(
    tmp_path: Path, logreg: LogisticRegression, data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> None:
    import joblib
    import skops.io as sio

    sio.dump(logreg, tmp_path / "model.skops")
    joblib.dump(logreg, tmp_path / "model.joblib")
    joblib.dump(logreg, tmp_path / "model.joblib.z", compress=3)
    for name in ("model.skops", "model.joblib", "model.joblib.z"):
        loaded = load_model(tmp_path / name)
        assert isinstance(loaded, LogisticRegression)
        np.testing.assert_array_equal(loaded.predict_proba(data[0]), logreg.predict_proba(data[0]))
        assert model_kind(loaded) == "classifier"
    assert isinstance(load_model(tmp_path / "model.joblib", ModelFormat.PICKLE), LogisticRegression)


def test_a_clean_pickle_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.pkl", pickle.dumps({"weights": [1.0, 2.0], "name": "m"}))
    assert load_model(path) == {"weights": [1.0, 2.0], "name": "m"}


def test_xgboost_round_trips_as_json_and_ubj(tmp_path: Path) -> None:
    import xgboost as xgb

    X = np.random.default_rng(1).normal(size=(60, 3))  # noqa: N806
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=X[:, 0] * 2), num_boost_round=3)
    for name in ("model.json", "model.ubj"):
        booster.save_model(tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert isinstance(loaded, xgb.Booster)
        np.testing.assert_allclose(loaded.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))
        assert model_kind(loaded) == "other"


def test_safetensors_written_by_hand_loads_as_numpy(tmp_path: Path) -> None:
    tensors = {
        "weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "bias": np.array([-1, 7], dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.uint8),
    }
    loaded = load_model(_write(tmp_path / "model.safetensors", safetensors_bytes(tensors)))
    assert set(loaded) == set(tensors)
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype and loaded[name].flags.writeable


def test_safetensors_agrees_with_the_reference_implementation(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"a": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], dtype=np.int64)}
    path = tmp_path / "reference.safetensors"
    st.save_file(tensors, str(path), metadata={"format": "np"})
    loaded = load_model(path)
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)
    mine = _write(tmp_path / "mine.safetensors", safetensors_bytes(tensors))
    for name, array in st.load_file(str(mine)).items():
        np.testing.assert_array_equal(array, tensors[name])


def test_lightgbm_round_trips(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    X = np.random.default_rng(2).normal(size=(100, 3))  # noqa: N806
    params = {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(X, label=X[:, 1]), num_boost_round=3)
    booster.save_model(tmp_path / "model.txt")
    assert detect_format(tmp_path / "model.txt") is ModelFormat.LIGHTGBM
    loaded = load_model(tmp_path / "model.txt")
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X))
    assert model_kind(lgb.LGBMRegressor()) == "regressor"


def _onnx_model(onnx: Any, *initializers: Any) -> Any:
    helper = onnx.helper
    node = helper.make_node("Identity", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    graph = helper.make_graph([node], "g", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_round_trips(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    onnx.save(_onnx_model(onnx), tmp_path / "model.onnx")
    assert detect_format(tmp_path / "model.onnx") is ModelFormat.ONNX
    loaded = load_model(tmp_path / "model.onnx")
    assert [n.op_type for n in loaded.graph.node] == ["Identity"]


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[1])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    onnx.save(_onnx_model(onnx, tensor), tmp_path / "model.onnx")
    with pytest.raises(ModelRefused, match="malicious"):
        load_model(tmp_path / "model.onnx")


def test_torch_state_dict_round_trips(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {"weight": torch.arange(4.0), "bias": torch.zeros(2)}
    torch.save(state, tmp_path / "model.pt")
    assert detect_format(tmp_path / "model.pt") is ModelFormat.TORCH
    loaded = load_model(tmp_path / "model.pt")
    assert set(loaded) == {"weight", "bias"} and torch.equal(loaded["weight"], state["weight"])
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(load_model(tmp_path / "legacy.pt")["bias"], state["bias"])
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole module: more than tensors
    with pytest.raises(ModelRefused, match="not a plain state_dict") as caught:
        load_model(tmp_path / "module.pt")
    assert "state_dict()" in caught.value.hint


def test_a_missing_library_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xgboost as xgb

    booster = xgb.train({}, xgb.DMatrix(np.eye(3), label=[0, 1, 0]), num_boost_round=1)
    booster.save_model(tmp_path / "model.json")
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(LoaderUnavailable, match="needs xgboost") as caught:
        load_model(tmp_path / "model.json")
    assert "pip install xgboost" in caught.value.hint
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(LoaderUnavailable) as caught:
        load_model(_write(tmp_path / "model.pt", torch_zip_bytes(pickle.dumps({"w": 1}, protocol=2))))
    assert "install torch" in caught.value.hint


def test_optional_libraries_are_not_imported_with_the_module() -> None:
    code = (
        "import sys, mlwarden.registry.formats; "
        "print(sorted(m for m in ('torch', 'onnx', 'xgboost', 'lightgbm', 'safetensors', 'skops', 'joblib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- refusals ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_unpickling")
@pytest.mark.parametrize("declared", [None, ModelFormat.JOBLIB, ModelFormat.PICKLE])
def test_a_malicious_pickle_is_refused_before_any_load(tmp_path: Path, declared: ModelFormat | None) -> None:
    path = _write(tmp_path / "model.joblib", MALICIOUS_PICKLE)
    with pytest.raises(ModelRefused) as caught:
        load_model(path, declared)
    message = str(caught.value)
    assert "verdict is malicious" in message and "os.system" in message
    assert "mlwarden scan" in caught.value.hint


@pytest.mark.usefixtures("no_unpickling")
def test_a_malicious_compressed_joblib_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.joblib", zlib.compress(MALICIOUS_PICKLE))
    assert detect_format(path) is ModelFormat.JOBLIB
    with pytest.raises(ModelRefused, match="verdict is malicious"):
        load_model(path)


@pytest.mark.usefixtures("no_unpickling")
def test_a_torch_archive_with_a_malicious_pickle_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.pt", torch_zip_bytes(MALICIOUS_PICKLE))
    assert detect_format(path) is ModelFormat.TORCH
    with pytest.raises(ModelRefused, match="verdict is malicious"):
        load_model(path)


def test_a_skops_file_with_an_untrusted_type_is_refused(
    tmp_path: Path, data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> None:
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(Doubler().fit(data[0]), path)
    name = f"{Doubler.__module__}.{Doubler.__qualname__}"
    with pytest.raises(ModelRefused, match="types nobody trusted") as caught:
        load_model(path)
    assert name in str(caught.value) and f"trusted_types=[{name!r}]" in caught.value.hint
    loaded = load_model(path, trusted_types=[name])
    assert isinstance(loaded, Doubler) and loaded.factor_ == 2.0


def test_a_skops_file_calling_a_file_reader_is_refused_despite_its_prefix(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    buffer = io.BytesIO(sio.dumps(FunctionTransformer(func=np.log1p)))
    schema = json.loads(zipfile.ZipFile(buffer).read("schema.json"))
    schema["content"]["content"]["func"].update({"__class__": "load", "__module__": "numpy"})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    path = _write(tmp_path / "model.skops", out.getvalue())
    assert detect_format(path) is ModelFormat.SKOPS
    with pytest.raises(ModelRefused, match=r"numpy\.load"):
        load_model(path)


def test_the_skops_allow_list() -> None:
    untrusted = [
        "sklearn.tree._tree.Tree",
        "numpy.random._generator.Generator",
        "collections.OrderedDict",
        "builtins.eval",
        "os.system",
        "numpy.f2py.compile",
        "scipy.io.loadmat",
        "mypackage.Model",
    ]
    refused = ["builtins.eval", "mypackage.Model", "numpy.f2py.compile", "os.system", "scipy.io.loadmat"]
    assert skops_refused(untrusted, ()) == refused
    assert skops_refused(untrusted, ["mypackage.Model"]) == [n for n in refused if n != "mypackage.Model"]


def test_a_skops_file_that_is_not_a_skops_schema_is_not_skops(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", b'{"title": "a JSON schema, not skops"}')
    assert detect_format(_write(tmp_path / "model.skops", buffer.getvalue())) is ModelFormat.UNKNOWN


def _header(**tensor: Any) -> dict[str, Any]:
    return {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **tensor}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (safetensors_bytes({"w": np.ones(2, dtype=np.float32)})[:20], "header is cut short"),
        ((1000).to_bytes(8, "little") + b'{"w": {"dtype": "F32"', "header is cut short"),
        ((10**9).to_bytes(8, "little") + b"{" + b" " * 100, "over the 100000000-byte limit"),
        (safetensors_bytes({}, header=_header(data_offsets=[0, 800])) + bytes(8), "spans 800 bytes"),
        (safetensors_bytes({}, header=_header(shape=[200], data_offsets=[0, 800])) + bytes(8), "out of bounds"),
        (safetensors_bytes({}, header=_header()) + bytes(16), "trailing bytes"),
        (
            safetensors_bytes({}, header={**_header(), "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})
            + bytes(12),
            "overlaps",
        ),
        (safetensors_bytes({}, header=_header(dtype="F33")) + bytes(8), "unknown dtype"),
        (safetensors_bytes({}, header=_header(shape=[True, 2])) + bytes(8), "invalid shape"),
        (safetensors_bytes({}, header=_header(data_offsets=[8, 0])) + bytes(8), "invalid data offsets"),
        (safetensors_bytes({}, header=_header(extra=1)) + bytes(8), "not exactly"),
        (b"\x1a\x00\x00\x00\x00\x00\x00\x00" + b'{"a": {}, "a": {}}' + b" " * 8, "duplicate key"),
    ],
)
def test_a_malformed_safetensors_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = _write(tmp_path / "model.safetensors", content)
    assert detect_format(path) is ModelFormat.SAFETENSORS
    with pytest.raises(MalformedModel, match=message) as caught:
        load_model(path)
    assert isinstance(caught.value, ModelRefused) and caught.value.hint


def test_too_short_or_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelRefused, match="as safetensors: its content is unknown"):
        load_model(_write(tmp_path / "model.safetensors", b"\x08\x00\x00"), ModelFormat.SAFETENSORS)
    with pytest.raises(MalformedModel, match="shorter than the 8-byte"):
        read_safetensors(b"\x08\x00\x00")
    with pytest.raises(MalformedModel, match="not a JSON object"):
        read_safetensors(b"\x02\x00\x00\x00\x00\x00\x00\x00[]")


def test_bfloat16_safetensors_needs_torch(tmp_path: Path) -> None:
    header = {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}
    with pytest.raises(InputError, match="NumPy cannot hold") as caught:
        load_model(_write(tmp_path / "model.safetensors", safetensors_bytes({}, header=header) + bytes(4)))
    assert "torch" in caught.value.hint


def test_unknown_content_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelRefused, match="no model format the registry loads"):
        load_model(_write(tmp_path / "notes.txt", b"hello\n"))
    with pytest.raises(MlwardenError, match="no model file"):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(MalformedModel, match="XGBoost could not load"):
        load_model(_write(tmp_path / "broken.json", b'{"learner": {"broken": true}, "version": [3, 0, 0]}'))


def test_model_kind() -> None:
    assert model_kind(LogisticRegression()) == "classifier"
    assert model_kind(LinearRegression()) == "regressor"
    assert model_kind(Doubler()) == "other"
    assert model_kind({"weights": np.ones(2)}) == "other"
    assert model_kind(None) == "other"
