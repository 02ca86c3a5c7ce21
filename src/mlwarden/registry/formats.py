"""Model formats of the registry: what a model version's file is (by content, never by its name), and
loading it back without letting it run code.

    fmt = detect_format(Path("model.skops"))           # ModelFormat.SKOPS
    model = load_model(Path("model.skops"))            # the estimator, or ModelRefused
    model_kind(model)                                  # "classifier"

A version is one file or a directory; a directory's format is the format of its one main model file.
Every file is read once: the bytes that are detected and scanned are the bytes that are loaded.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from mlwarden.errors import InputError, NotFound
from mlwarden.registry import loaders
from mlwarden.registry.loaders import LoaderUnavailable, MalformedModel, ModelRefused
from mlwarden.registry.tensorfile import looks_like_safetensors, read_safetensors
from mlwarden.scan import FileVerdict, Verdict, scan_bytes
from mlwarden.scan.pickle_vm import OPCODE_BYTES

__all__ = [
    "LoaderUnavailable",
    "MalformedModel",
    "ModelFormat",
    "ModelKind",
    "ModelRefused",
    "detect_format",
    "load_model",
    "main_file",
    "model_kind",
]

ModelKind = Literal["classifier", "regressor", "other"]


class ModelFormat(StrEnum):
    """The formats a model version is stored in, and the two answers that are not one."""

    SKOPS = "skops"
    """A ZIP archive whose ``schema.json`` is a skops schema; loaded by skops with an allow-list of types."""
    JOBLIB = "joblib"
    """A pickle as joblib writes it (NumPy arrays stored raw after their wrapper), or compressed by joblib."""
    PICKLE = "pickle"
    """A plain pickle (any protocol); loaded only when the scanner calls it clean."""
    TORCH = "torch"
    """A PyTorch file (zip archive, legacy or tar); loaded as a state_dict with ``weights_only=True``."""
    SAFETENSORS = "safetensors"
    """Tensors behind a JSON header; read into NumPy arrays by a validating parser."""
    ONNX = "onnx"
    """An ONNX ModelProto (protobuf)."""
    XGBOOST = "xgboost"
    """XGBoost's own model file, JSON or UBJSON."""
    LIGHTGBM = "lightgbm"
    """LightGBM's own text model file."""
    DIRECTORY = "directory"
    """A folder holding several model files, none of them the main one: load a file inside it."""
    UNKNOWN = "unknown"
    """No format the registry loads: not a model, or a model of another kind (Keras, GGUF, NumPy...)."""


_FROM_SCANNER = {
    "pytorch-zip": ModelFormat.TORCH,
    "pytorch-legacy": ModelFormat.TORCH,
    "pytorch-legacy-tar": ModelFormat.TORCH,
    "torchscript": ModelFormat.TORCH,  # refused on load: the scanner cannot clear TorchScript code
    "onnx": ModelFormat.ONNX,
    "safetensors": ModelFormat.SAFETENSORS,
}
_COMPRESSED = {"gzip", "bzip2", "xz", "lzma", "zlib"}  # what joblib.dump(compress=...) writes
_PICKLES = {ModelFormat.PICKLE, ModelFormat.JOBLIB}  # joblib.load reads both
_JSON_FIRST_KEY = re.compile(rb'\A\s*\{\s*"(learner|version)"\s*:')
_UBJ_LENGTH = {ord("i"): 1, ord("U"): 1, ord("I"): 2, ord("l"): 4, ord("L"): 8}  # big-endian, ubjson.org
_SKOPS_SCHEMA_LIMIT = 1 << 30


def detect_format(path: str | os.PathLike[str]) -> ModelFormat:
    """The format of a model file or directory, from its content alone."""
    target = Path(path)
    if target.is_dir():
        found = _model_files(target)
        main = _pick_main(found)
        if main is not None:
            return found[main]
        return ModelFormat.DIRECTORY if found else ModelFormat.UNKNOWN
    return _inspect(_read(target), target)[0]


def main_file(folder: str | os.PathLike[str]) -> Path | None:
    """The main model file of a directory: its only model file, else its only one named ``model.*``."""
    return _pick_main(_model_files(Path(folder)))


def load_model(
    path: str | os.PathLike[str], fmt: ModelFormat | None = None, *, trusted_types: Sequence[str] = ()
) -> Any:
    """The in-memory model of a file (or a directory's main file), refusing anything unsafe.

    ``fmt`` is what the caller expects: the content must agree (pickle and joblib count as one), so a
    file relabelled as another format never reaches that format's loader. ``trusted_types`` adds
    fully-qualified type names a skops file may use beyond the allow-list; review them first.

    Raises :class:`ModelRefused` (not safe, or no format the registry loads), :class:`MalformedModel`
    (the content breaks its format), :class:`LoaderUnavailable` (the format's library is not installed).
    """
    target = Path(path)
    if target.is_dir():
        found = _model_files(target)
        main = _pick_main(found)
        if main is None:
            listed = ", ".join(str(p.relative_to(target)) for p in found) or "none"
            raise InputError(
                f"{target} holds no single main model file (model files: {listed})",
                hint="load one file of the directory, or name the main one model.<ext>",
            )
        target = main
    data = _read(target)
    detected, scan = _inspect(data, target)
    return _load(_agreed(fmt, detected, target), data, scan, target, trusted_types)


def model_kind(obj: Any) -> ModelKind:
    """What a scikit-learn-compatible estimator predicts: a class, a number, or neither ("other", also
    for anything that is not such an estimator, e.g. a Booster or a dict of tensors)."""
    if hasattr(obj, "__sklearn_tags__"):
        from sklearn.base import is_classifier, is_regressor

        try:
            if is_classifier(obj):
                return "classifier"
            if is_regressor(obj):
                return "regressor"
        except (AttributeError, TypeError):  # tags that do not follow sklearn's protocol
            return "other"
        return "other"
    kind = getattr(obj, "_estimator_type", None)  # estimators written before sklearn 1.6's tags
    return kind if kind in ("classifier", "regressor") else "other"


# -- detection -------------------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise NotFound(f"no model file at {path}") from error
    except OSError as error:
        raise InputError(f"cannot read {path}: {error}") from error


def _inspect(data: bytes, path: Path) -> tuple[ModelFormat, FileVerdict]:
    """The format by content, and the scanner's verdict on the same bytes (every format is scanned)."""
    scan = scan_bytes(data, name=str(path))
    fmt = _own_sniff(data) or _from_scan(data, scan)
    if fmt is ModelFormat.UNKNOWN and looks_like_safetensors(data[:16]):
        fmt = ModelFormat.SAFETENSORS  # cut short or out of bounds: its loader says exactly what is wrong
    return fmt, scan


def _own_sniff(data: bytes) -> ModelFormat | None:
    """Formats the scanner has no name for: skops (to the scanner, a ZIP), XGBoost and LightGBM."""
    if data[:4] == b"PK\x03\x04" and _is_skops(data):
        return ModelFormat.SKOPS
    if _xgboost_first_key(data) and b"learner" in data:
        return ModelFormat.XGBOOST
    if data.startswith((b"tree\nversion=", b"tree\r\nversion=")):  # LightGBM's model_to_string()
        return ModelFormat.LIGHTGBM
    return None


def _is_skops(data: bytes) -> bool:
    """skops writes a ZIP with ``schema.json`` at its root: a node with ``__loader__`` and ``protocol``."""
    import json

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > _SKOPS_SCHEMA_LIMIT:
                return False
            schema = json.loads(archive.read(info))
    except (KeyError, zipfile.BadZipFile, ValueError, OSError, RecursionError, NotImplementedError, EOFError):
        return False
    return isinstance(schema, dict) and "__loader__" in schema and "protocol" in schema


def _xgboost_first_key(data: bytes) -> bool:
    """XGBoost writes ``{"learner": ..., "version": ...}``, as JSON or as UBJSON (``{`` + typed length)."""
    if _JSON_FIRST_KEY.match(data[:4096]):
        return True
    if data[:1] != b"{" or len(data) < 3 or data[1] not in _UBJ_LENGTH:
        return False
    width = _UBJ_LENGTH[data[1]]
    length = int.from_bytes(data[2 : 2 + width], "big")
    return data[2 + width : 2 + width + length] in (b"learner", b"version")


def _from_scan(data: bytes, scan: FileVerdict) -> ModelFormat:
    if scan.verdict is Verdict.NOT_A_MODEL:
        return ModelFormat.UNKNOWN
    if scan.format == "pickle":
        joblib = any(g.startswith("joblib.") for g in scan.globals)
        return ModelFormat.JOBLIB if joblib else ModelFormat.PICKLE
    if scan.format in _COMPRESSED:
        head = _decompressed_head(data, scan.format)
        return ModelFormat.JOBLIB if head and head[0] in OPCODE_BYTES else ModelFormat.UNKNOWN
    return _FROM_SCANNER.get(scan.format, ModelFormat.UNKNOWN)


def _decompressed_head(data: bytes, kind: str) -> bytes:
    """The first bytes inside a compressed stream (bounded: never the whole file)."""
    window = memoryview(data)[: 4 << 20]
    try:
        if kind in ("gzip", "zlib"):
            return zlib.decompressobj(zlib.MAX_WBITS | (16 if kind == "gzip" else 0)).decompress(window, 16)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(window, 16)
        return lzma.LZMADecompressor().decompress(window, 16)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return b""


def _model_files(folder: Path) -> dict[Path, ModelFormat]:
    """The files of a directory that hold a model the registry loads (symbolic links are not followed)."""
    found: dict[Path, ModelFormat] = {}
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            candidate = Path(root) / name
            if candidate.is_symlink() or not candidate.is_file():
                continue
            fmt = _inspect(_read(candidate), candidate)[0]
            if fmt is not ModelFormat.UNKNOWN:
                found[candidate] = fmt
    return found


def _pick_main(found: dict[Path, ModelFormat]) -> Path | None:
    if len(found) == 1:
        return next(iter(found))
    named = [p for p in found if p.name.split(".", 1)[0] == "model"]
    return named[0] if len(named) == 1 else None


# -- loading ---------------------------------------------------------------------------------------------


def _agreed(declared: ModelFormat | None, detected: ModelFormat, path: Path) -> ModelFormat:
    if declared is None or declared is detected or {declared, detected} <= _PICKLES:
        return detected
    raise ModelRefused(
        f"refusing to load {path} as {declared.value}: its content is {detected.value}",
        hint="the file was renamed or relabelled: find out why before loading it, or omit the format",
    )


def _load(fmt: ModelFormat, data: bytes, scan: FileVerdict, path: Path, trusted_types: Sequence[str]) -> Any:
    match fmt:
        case ModelFormat.SKOPS:
            return loaders.load_skops(data, scan, trusted_types)
        case ModelFormat.JOBLIB:
            return loaders.load_joblib(data, scan)
        case ModelFormat.PICKLE:
            return loaders.load_pickle(data, scan)
        case ModelFormat.TORCH:
            return loaders.load_torch(data, scan)
        case ModelFormat.SAFETENSORS:
            return read_safetensors(data, str(path))
        case ModelFormat.ONNX:
            return loaders.load_onnx(data, scan, path)
        case ModelFormat.XGBOOST:
            return loaders.load_xgboost(data, scan)
        case ModelFormat.LIGHTGBM:
            return loaders.load_lightgbm(data, scan)
    known = f" ({scan.format})" if scan.format != "unknown" else ""
    raise ModelRefused(
        f"refusing to load {path}: its content{known} is no model format the registry loads",
        hint="store the model as skops, joblib, a torch state_dict, safetensors, ONNX, XGBoost or LightGBM",
    )
