"""A streaming reader of the protocol buffers wire format (https://protobuf.dev/programming-guides/encoding/).

Schemas are tiny: for each message, the fields that lead somewhere interesting. Everything else, tensor
bytes above all, is skipped without being read, so a multi-gigabyte ONNX file costs a few seeks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlwarden.scan.source import Stream

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_DEPTH = 64
MAX_STRING = 1 << 20


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


@dataclass(frozen=True)
class Field:
    kind: str  # "message", "string" or "varint"
    target: str = ""  # message name for "message", event name for "string"/"varint"


Schema = Mapping[str, Mapping[int, Field]]
Visit = Callable[[str, str | int], None]


def walk(stream: Stream, schema: Schema, root: str, visit: Visit, size: int | None = None) -> int:
    """Walk ``stream`` as message ``root``; ``visit(event, value)`` for every string/varint the schema names.
    Returns the number of fields read (0 means the bytes hold no field at all)."""
    end = stream.tell() + (size if size is not None else (stream.remaining or 0))
    return _message(stream, schema, root, visit, end, 0)


def _varint(stream: Stream) -> int:
    value, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise WireError("varint cut short")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _message(stream: Stream, schema: Schema, name: str, visit: Visit, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deeply")
    fields = schema.get(name, {})
    count = 0
    while stream.tell() < end:
        key = _varint(stream)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        count += 1
        spec = fields.get(number)
        if wire == VARINT:
            value = _varint(stream)
            if spec is not None and spec.kind == "varint":
                visit(spec.target, value)
        elif wire in (I64, I32):
            stream.read_exact(8 if wire == I64 else 4)
        elif wire == LEN:
            _length_delimited(stream, schema, spec, visit, end, depth)
        else:
            raise WireError(f"wire type {wire}")
    if stream.tell() != end:
        raise WireError("a field runs past the end of its message")
    return count


def _length_delimited(stream: Stream, schema: Schema, spec: Field | None, visit: Visit, end: int, depth: int) -> None:
    length = _varint(stream)
    if stream.tell() + length > end:
        raise WireError("length runs past the end of the message")
    if spec is not None and spec.kind == "message":
        _message(stream, schema, spec.target, visit, stream.tell() + length, depth + 1)
    elif spec is not None and spec.kind == "string" and length <= MAX_STRING:
        visit(spec.target, stream.read_exact(length).decode("utf-8", "replace"))
    elif stream.skip(length) != length:
        raise WireError("field cut short")
