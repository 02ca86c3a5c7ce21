"""Protocol-buffer models: TensorFlow SavedModel (``saved_model.pb``), Keras metadata in a SavedModel
(``keras_metadata.pb``) and ONNX. Neither tensorflow nor onnx is needed: the wire format is walked.

* SavedModel: every op of every graph and function. Ops that run Python (``PyFunc``, ``EagerPyFunc``)
  are malicious, ops that write or read arbitrary files are malicious or unsafe (tensorflow/core/ops).
* ONNX: every tensor's ``external_data`` location (onnx/onnx.proto3). ONNX runtimes read that file
  relative to the model; an absolute path or ``..`` reads anything on the machine.
"""

from __future__ import annotations

import re

from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.keras import check_keras_config
from mlwarden.scan.model import Severity
from mlwarden.scan.protowire import Field, Schema, WireError, walk
from mlwarden.scan.source import Stream

TF_OPS = {
    "PyFunc": Severity.MALICIOUS, "PyFuncStateless": Severity.MALICIOUS, "EagerPyFunc": Severity.MALICIOUS,
    "WriteFile": Severity.MALICIOUS, "ReadFile": Severity.UNSAFE, "MatchingFiles": Severity.UNSAFE,
    "ImmutableConst": Severity.UNSAFE, "WholeFileReader": Severity.UNSAFE, "WholeFileReaderV2": Severity.UNSAFE,
    "DebugIdentityV2": Severity.UNSAFE, "DebugIdentityV3": Severity.UNSAFE, "LoadAndRemapMatrix": Severity.UNSAFE,
}  # fmt: skip


def M(target: str) -> Field:
    return Field("message", target)


def S(event: str) -> Field:
    return Field("string", event)


def V(event: str) -> Field:
    return Field("varint", event)


SAVED_MODEL: Schema = {
    "SavedModel": {1: V("version"), 2: M("MetaGraphDef")},
    "MetaGraphDef": {2: M("GraphDef")},
    "GraphDef": {1: M("NodeDef"), 2: M("Library")},
    "Library": {1: M("FunctionDef")},
    "FunctionDef": {3: M("NodeDef")},
    "NodeDef": {2: S("op")},
}
KERAS_METADATA: Schema = {"SavedMetadata": {1: M("SavedObject")}, "SavedObject": {4: S("identifier"), 5: S("json")}}
ONNX: Schema = {
    "Model": {1: V("ir_version"), 7: M("Graph"), 20: M("TrainingInfo"), 25: M("Function")},
    "TrainingInfo": {1: M("Graph"), 2: M("Graph")},
    "Function": {7: M("Node")},
    "Graph": {1: M("Node"), 5: M("Tensor"), 15: M("Sparse")},
    "Sparse": {1: M("Tensor"), 2: M("Tensor")},
    "Node": {5: M("Attribute")},
    "Attribute": {5: M("Tensor"), 6: M("Graph"), 10: M("Tensor"), 11: M("Graph"), 22: M("Sparse"), 23: M("Sparse")},
    "Tensor": {13: M("Entry")},
    "Entry": {1: S("key"), 2: S("value")},
}
_DRIVE = re.compile(r"\A[A-Za-z]:")


class ProtobufScanner:
    name = "protobuf"
    priority = 50

    def sniff(self, head: bytes, size: int | None) -> bool:
        return len(head) >= 3 and ((head[0] == 0x08 and head[1] < 0x80) or head[0] == 0x0A)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        for attempt in (_saved_model, _keras_metadata, _onnx):
            try:
                if attempt(stream.fork(), ctx):
                    return True
            except WireError:
                continue
            except EOFError:
                continue
        return False


def _saved_model(stream: Stream, ctx: ScanContext) -> bool:
    ops: list[str] = []
    seen = {"version": False}

    def visit(event: str, value: str | int) -> None:
        if event == "op" and isinstance(value, str):
            ops.append(value)
        elif event == "version":
            seen["version"] = True

    walk(stream, SAVED_MODEL, "SavedModel", visit)
    if not seen["version"] or not ops:
        return False
    ctx.recognize("tensorflow-savedmodel")
    for op in sorted(set(ops)):
        if op in TF_OPS:
            ctx.add("tf-op", TF_OPS[op], f"the graph uses the {op} op ({ops.count(op)}x)", globals=(f"tf.{op}",))
    return True


def _keras_metadata(stream: Stream, ctx: ScanContext) -> bool:
    items: list[tuple[str, str]] = []
    current: dict[str, str] = {}

    def visit(event: str, value: str | int) -> None:
        current[event] = str(value)
        if event == "json":
            items.append((current.get("identifier", ""), str(value)))

    walk(stream, KERAS_METADATA, "SavedMetadata", visit)
    if not items or not all(ident.startswith("_tf_keras") for ident, _ in items):
        return False
    for _, config in items:
        check_keras_config(config, ctx)
    return True


def _onnx(stream: Stream, ctx: ScanContext) -> bool:
    locations: list[str] = []
    state: dict[str, object] = {"graph": False, "key": None}

    def visit(event: str, value: str | int) -> None:
        if event == "ir_version":
            state["graph"] = 1 <= int(value) <= 64
        elif event == "key":
            state["key"] = value
        elif event == "value" and state["key"] == "location":
            locations.append(str(value))

    walk(stream, ONNX, "Model", visit)
    if not state["graph"]:
        return False
    ctx.recognize("onnx")
    for location in locations:
        problem = _escapes(location)
        if problem:
            ctx.add("onnx-external-data", Severity.MALICIOUS, f"external data {location!r} {problem}")
    return True


def _escapes(location: str) -> str | None:
    """Why an external-data location reaches outside the model's folder, or None."""
    parts = re.split(r"[\\/]", location)
    if location.startswith(("/", "\\")) or _DRIVE.match(location):
        return "is an absolute path"
    if ".." in parts:
        return "climbs out of the model folder"
    if "\x00" in location or location.startswith("~"):
        return "is not a plain relative path"
    return None
