"""Keras models: ``.keras`` archives (config.json), legacy HDF5 ``.h5`` files (the ``model_config``
attribute) and the JSON they carry.

Loading a Keras config runs code in two ways: a ``Lambda`` layer carries Python bytecode (or source)
that Keras deserialises and calls, and any object may name a ``module`` that Keras imports to find its
class or function (the safe_mode bypasses, e.g. CVE-2024-3660 and CVE-2025-1550). Both are reported.
h5py is used only when installed (``pip install mlwarden[hdf5]``); without it HDF5 is unverifiable.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from mlwarden.scan.context import ScanContext
from mlwarden.scan.files import SeekableFile, Spooled
from mlwarden.scan.model import Severity
from mlwarden.scan.policy import GlobalRef
from mlwarden.scan.source import Stream

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KERAS_MODULES = (
    "keras",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
    "tf_keras",
    "tensorflow.keras",
    "tensorflow.python.keras",
)
SAFE_FUNCTION_MODULES = tuple(
    f"{root}.{part}" for root in ("keras", "keras.src") for part in ("activations", "losses", "metrics", "ops")
)


class Hdf5Scanner:
    name = "hdf5"
    priority = 20

    def sniff(self, head: bytes, size: int | None) -> bool:
        return head.startswith(HDF5_MAGIC)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        ctx.recognize("hdf5")
        if importlib.util.find_spec("h5py") is None:
            hint = "HDF5 needs h5py to be read: pip install 'mlwarden[hdf5]'"
            ctx.add("unsupported-format", Severity.UNVERIFIABLE, hint)
            return True
        import h5py  # optional dependency: only imported when an HDF5 file is scanned

        with Spooled(stream, ctx.limits.max_spool_bytes) as seekable:
            try:
                with h5py.File(SeekableFile(seekable), "r") as f:
                    configs = [f.attrs.get(k) for k in ("model_config", "training_config")]
            except (OSError, ValueError, KeyError, RuntimeError) as error:
                ctx.add("corrupt-member", Severity.UNVERIFIABLE, f"cannot read HDF5: {error}")
                return True
        for raw in configs:
            if raw is not None:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                check_keras_config(text, ctx)
        return True


def check_keras_json(stream: Stream, ctx: ScanContext) -> None:
    data = stream.read(ctx.limits.max_header + 1)
    if len(data) > ctx.limits.max_header:
        ctx.add("limit-exceeded", Severity.UNVERIFIABLE, f"JSON larger than {ctx.limits.max_header} bytes")
        return
    check_keras_config(data.decode("utf-8", "replace"), ctx)


def check_keras_config(text: str, ctx: ScanContext) -> None:
    ctx.recognize("keras")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        ctx.add("malformed-config", Severity.UNSAFE, "the Keras configuration is not valid JSON")
        return
    _walk(config, ctx, 0)


def _walk(node: Any, ctx: ScanContext, depth: int) -> None:
    if depth > 200:
        ctx.add("limit-exceeded", Severity.UNVERIFIABLE, "Keras configuration nested too deeply")
        return
    if isinstance(node, list):
        for item in node:
            _walk(item, ctx, depth + 1)
    elif isinstance(node, dict):
        _check_object(node, ctx)
        for value in node.values():
            _walk(value, ctx, depth + 1)


def _check_object(node: dict[str, Any], ctx: ScanContext) -> None:
    name = node.get("class_name")
    if name == "Lambda":
        config = node.get("config")
        what = "Python bytecode" if isinstance(config, dict) and "function" in config else "Python code"
        ctx.add("keras-lambda", Severity.UNSAFE, f"a Lambda layer: loading it runs {what}", chain=_label(node))
    module = node.get("module")
    if isinstance(module, str) and module:
        _check_module(module, name, ctx)


def _check_module(module: str, name: object, ctx: ScanContext) -> None:
    ref = GlobalRef(module, name if isinstance(name, str) and name else "?")
    if name == "function" or name == "__lambda__":
        if not module.startswith(SAFE_FUNCTION_MODULES):
            ctx.add("keras-function", Severity.UNSAFE, f"refers to a function in module {module}", globals=(str(ref),))
        return
    if any(module == m or module.startswith(m + ".") for m in KERAS_MODULES):
        return
    reason = ctx.policy.deny.match(ref)
    severity = Severity.MALICIOUS if reason else Severity.UNSAFE
    text = f"imports module {module} to build {ref.name}" + (f" ({reason})" if reason else "")
    ctx.add("keras-module", severity, text, globals=(str(ref),))


def _label(node: dict[str, Any]) -> str:
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    return f"Lambda({name!r})" if name else "Lambda"
