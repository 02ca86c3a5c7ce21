"""Turning the bytes of a model version into the in-memory model, one loader per format, each refusing
what it cannot load safely. :mod:`mlwarden.registry.formats` decides the format and calls these.

Every loader gets the bytes that were detected and scanned, never the path again: a file swapped
between the check and the load cannot slip through. Optional libraries (torch, onnx, xgboost, lightgbm)
are imported when a model of theirs is loaded, never when this module is.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mlwarden.errors import CheckFailed, UsageError
from mlwarden.scan import FileVerdict, GlobalRef, Severity, Verdict
from mlwarden.scan.policy import DenyList

# Modules whose types a skops file may instantiate without the caller naming them (module prefixes).
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "xgboost.", "lightgbm.", "builtins.", "collections.")
# Inside those prefixes, what reads or writes files or runs code is never trusted by prefix (skops can
# call a trusted callable with arguments taken from the file): the scanner's deny-list, plus file I/O.
_SKOPS_DENIED = (
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.loadtxt",
    "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._datasource", "numpy.lib.DataSource",
    "numpy.core.memmap", "numpy._core.memmap", "scipy.io", "scipy.sparse.load_npz", "scipy.sparse.save_npz",
    "scipy._lib._testutils", "xgboost.testing", "xgboost.tracker", "xgboost.collective", "xgboost.dask",
    "xgboost.spark", "lightgbm.dask", "lightgbm.plotting",
)  # fmt: skip
_TORCH_HINT = "install torch (pip install torch) to load PyTorch state_dicts"


class ModelRefused(CheckFailed):
    """A model file was not loaded: loading it could run code or read what it should not."""

    default_hint = "run `mlwarden scan PATH` to see why; re-save the model with skops or safetensors"


class MalformedModel(ModelRefused):
    """The content claims a format but breaks its rules (cut short, offsets out of bounds, unparsable)."""

    default_hint = "the file is damaged or crafted: fetch or export the model again"


class LoaderUnavailable(UsageError):
    """The library that reads this model format is not installed."""


def optional_module(name: str, install: str) -> ModuleType:
    """Import an optional library at the moment a model needs it; a clear error says what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise LoaderUnavailable(
            f"loading this model needs {name}, which is not installed ({error})", hint=install
        ) from error


# -- the scanner's verdict ---------------------------------------------------------------------------------


def require_clean(scan: FileVerdict, what: str) -> None:
    """Only a file the scanner calls clean is unpickled; anything else names the verdict and worst finding."""
    if scan.verdict is Verdict.CLEAN:
        return
    raise ModelRefused(
        f"refusing to load {scan.path} ({what}): the scanner's verdict is {scan.verdict.value}{_top(scan)}",
        hint=f"run `mlwarden scan {scan.path}` for every finding; only a clean file is loaded. Re-save "
        "the model with skops (scikit-learn) or safetensors (tensors), which load without running code",
    )


def require_not_unsafe(scan: FileVerdict, what: str) -> None:
    """Formats the scanner may not know (skops, XGBoost, LightGBM) must still not be flagged by it."""
    if scan.verdict in (Verdict.CLEAN, Verdict.NOT_A_MODEL):
        return
    require_clean(scan, what)


def _top(scan: FileVerdict) -> str:
    order = (Severity.MALICIOUS, Severity.UNSAFE, Severity.UNVERIFIABLE, Severity.INFO)
    findings = sorted(scan.findings, key=lambda f: order.index(f.severity))
    if not findings:
        return ""
    top = findings[0]
    where = f" at {top.location}" if top.location else ""
    chain = f": {top.chain}" if top.chain else ""
    return f"; worst finding: {top.code}{where}: {top.message}{chain}"


# -- skops ---------------------------------------------------------------------------------------------


def skops_refused(untrusted: Iterable[str], trusted_types: Sequence[str]) -> list[str]:
    """The types of a skops file that neither the prefix allow-list nor the caller trusts."""
    extra = set(trusted_types)
    deny = DenyList.default()
    refused = []
    for name in untrusted:
        if name in extra:
            continue
        by_prefix = name.startswith(SKOPS_TRUSTED_PREFIXES)
        denied = deny.match(GlobalRef.parse(name)) is not None if "." in name else True
        denied = denied or any(name == d or name.startswith(d + ".") for d in _SKOPS_DENIED)
        if not by_prefix or denied:
            refused.append(name)
    return sorted(refused)


def load_skops(data: bytes, scan: FileVerdict, trusted_types: Sequence[str]) -> Any:
    """skops.io with the types it does not trust itself filtered through the allow-list (skops docs:
    https://skops.readthedocs.io/en/stable/persistence.html); anything left over is refused, named."""
    import skops.io as sio

    require_not_unsafe(scan, "skops")
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
    except Exception as error:
        raise MalformedModel(f"{scan.path} is not a readable skops file: {error}") from error
    refused = skops_refused(untrusted, trusted_types)
    if refused:
        names = ", ".join(refused)
        raise ModelRefused(
            f"refusing to load {scan.path}: the skops file uses types nobody trusted: {names}",
            hint=f"review them; if they are yours and safe, pass trusted_types=[{', '.join(map(repr, refused))}]",
        )
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as error:
        raise MalformedModel(f"{scan.path}: skops could not load the model: {error}") from error


# -- pickle, joblib, torch: only after a clean scan --------------------------------------------------------


def load_pickle(data: bytes, scan: FileVerdict) -> Any:
    require_clean(scan, "pickle")
    try:
        return pickle.loads(data)  # noqa: S301 - the scanner passed every global of this very byte string
    except Exception as error:
        raise MalformedModel(f"{scan.path}: the pickle could not be loaded: {error}") from error


def load_joblib(data: bytes, scan: FileVerdict) -> Any:
    require_clean(scan, "joblib")
    joblib = optional_module("joblib", "pip install joblib")
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as error:
        raise MalformedModel(f"{scan.path}: joblib could not load the model: {error}") from error


def load_torch(data: bytes, scan: FileVerdict) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, even after a clean scan."""
    require_clean(scan, "torch")
    torch = optional_module("torch", _TORCH_HINT)
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:  # weights_only met a class: a whole module, not a state_dict
        reason = next((line.strip() for line in str(error).splitlines() if "Unsupported global" in line), "")
        raise ModelRefused(
            f"refusing to load {scan.path}: it is not a plain state_dict ({reason or error})",
            hint="save model.state_dict() (or safetensors) instead of the whole module, and rebuild it in code",
        ) from error
    except Exception as error:
        raise MalformedModel(f"{scan.path}: torch could not load the state_dict: {error}") from error


# -- ONNX, XGBoost, LightGBM: their own parsers, no code in the file -------------------------------------


def load_onnx(data: bytes, scan: FileVerdict, path: Path) -> Any:
    """onnx's protobuf parser; external tensor data is read only after the scanner checked that every
    location stays beside the model (onnx/onnx.proto3 ``external_data``)."""
    require_clean(scan, "onnx")
    onnx = optional_module("onnx", "pip install onnx (or: pip install 'mlwarden[dev]')")
    try:
        model = onnx.load_model_from_string(data)
        # a no-op for a model without external data
        importlib.import_module("onnx.external_data_helper").load_external_data_for_model(model, str(path.parent))
    except Exception as error:
        raise MalformedModel(f"{scan.path}: onnx could not load the model: {error}") from error
    return model


def load_xgboost(data: bytes, scan: FileVerdict) -> Any:
    """``xgboost.Booster`` from the JSON or UBJSON bytes (XGBoost tells them apart by content)."""
    require_not_unsafe(scan, "xgboost")
    xgboost = optional_module("xgboost", "pip install xgboost (or xgboost-cpu)")
    try:
        return xgboost.Booster(model_file=bytearray(data))
    except Exception as error:
        raise MalformedModel(f"{scan.path}: XGBoost could not load the model: {error}") from error


def load_lightgbm(data: bytes, scan: FileVerdict) -> Any:
    require_not_unsafe(scan, "lightgbm")
    lightgbm = optional_module("lightgbm", "pip install lightgbm")
    try:
        return lightgbm.Booster(model_str=data.decode("utf-8"))
    except Exception as error:
        raise MalformedModel(f"{scan.path}: LightGBM could not load the model: {error}") from error
