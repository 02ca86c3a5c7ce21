"""Benign models made at test time are clean: zero false positives. They are written, never loaded."""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest

from mlwarden.scan import Verdict, scan_bytes, scan_file
from tests.scan import craft as c

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")
datasets = pytest.importorskip("sklearn.datasets")


def assert_clean(data: bytes, what: str) -> None:
    verdict = scan_bytes(data, name=what)
    assert verdict.verdict is Verdict.CLEAN, (what, [(f.code, f.message) for f in verdict.findings])


def estimators() -> list[object]:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    X, y = datasets.make_classification(120, 6, random_state=0)
    models = [
        LogisticRegression(),
        RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0)),
        GradientBoostingClassifier(n_estimators=3),
        HistGradientBoostingClassifier(max_iter=3),
        SGDClassifier(),
        KNeighborsClassifier(algorithm="kd_tree"),
        SVC(),
        DecisionTreeClassifier(),
        make_pipeline(StandardScaler(), LogisticRegression()),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [m.fit(X, y) for m in models]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_sklearn_pickles_are_clean(protocol: int) -> None:
    for model in estimators():
        assert_clean(pickle.dumps(model, protocol=protocol), f"{type(model).__name__} protocol {protocol}")


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_sklearn_joblib_files_are_clean(tmp_path: Path, compress: object) -> None:
    model = {"models": estimators()[:3], "table": np.arange(100.0).reshape(10, 10), "ids": np.array(["a", "bc"])}
    model["objects"] = np.array([{"k": (1, 2)}, None], dtype=object)
    target = tmp_path / "model.joblib"
    joblib.dump(model, target, compress=compress)
    verdict = scan_file(target)
    assert verdict.verdict is Verdict.CLEAN, [(f.code, f.message) for f in verdict.findings]


def test_xgboost_models_are_clean() -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = datasets.make_classification(80, 5, random_state=0)
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    for protocol in (2, 4, 5):
        assert_clean(pickle.dumps(model, protocol=protocol), f"xgboost protocol {protocol}")
    buf = io.BytesIO()
    joblib.dump(model.get_booster(), buf)
    assert_clean(buf.getvalue(), "xgboost booster via joblib")


ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "int64": np.arange(5),
    "unicode": np.array(["x", "yyy"]),
    "structured": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    "datetime": np.array(["2020-01-01"], dtype="datetime64[D]"),
    "complex": np.array([1 + 2j]),
    "masked": np.ma.masked_array([1, 2], mask=[0, 1]),
    "object": np.array([{"a": (1, 2)}, [3, 4], "text"], dtype=object),
    "scalar": np.float64(3.5),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_numpy_arrays_are_clean(name: str) -> None:
    array = ARRAYS[name]
    for protocol in (2, 4, 5):
        assert_clean(pickle.dumps(array, protocol=protocol), f"{name} pickle {protocol}")
    if isinstance(array, np.ndarray) and not isinstance(array, np.ma.MaskedArray):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=True)
        assert_clean(buf.getvalue(), f"{name} npy")


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_archives_are_clean(compressed: bool) -> None:
    buf = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buf, a=ARRAYS["float32"], b=ARRAYS["object"], c=ARRAYS["structured"])
    assert_clean(buf.getvalue(), "npz")


def fake_state_dict() -> bytes:
    """A PyTorch-style archive written without torch: data.pkl with persistent storages, raw data files."""
    pid = c.MARK + c.s("storage") + c.glob("torch", "FloatStorage") + c.s("0") + c.s("cpu") + b"K\x04" + c.TUPLE
    tensor = c.glob("torch._utils", "_rebuild_tensor_v2") + c.MARK + pid + b"Q" + b"K\x00" + b"K\x04\x85" + b"K\x01\x85"
    tensor += b"\x89" + c.glob("collections", "OrderedDict") + c.EMPTY_TUPLE + c.REDUCE + c.TUPLE + c.REDUCE
    data = b"\x80\x02" + c.glob("collections", "OrderedDict") + c.EMPTY_TUPLE + c.REDUCE
    data += c.MARK + c.s("layer.weight") + tensor + b"u" + c.STOP
    storage = b"\x80\x04\x95\x00" * 4  # raw floats whose bytes happen to start like a pickle
    return c.zip_bytes(
        {"archive/data.pkl": data, "archive/byteorder": b"little", "archive/data/0": storage, "archive/version": b"3\n"}
    )


def test_pytorch_like_state_dict_is_clean() -> None:
    verdict = scan_bytes(fake_state_dict())
    assert verdict.verdict is Verdict.CLEAN, verdict.findings
    assert verdict.format == "pytorch-zip"


def test_torch_state_dict_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    target = tmp_path / "model.pt"
    torch.save(model.state_dict(), target)
    assert scan_file(target).verdict is Verdict.CLEAN
    torch.save(model.state_dict(), target, _use_new_zipfile_serialization=False)
    assert scan_file(target).verdict is Verdict.CLEAN


def test_plain_zip_of_text_is_not_a_model() -> None:
    data = c.zip_bytes({"README.md": b"# hello\n", "notes.txt": b"nothing here"}, method=zipfile.ZIP_DEFLATED)
    assert scan_bytes(data).verdict is Verdict.NOT_A_MODEL
