"""A reader for safetensors files that needs no library: the header is validated before one byte of
tensor data is used, exactly as the reference implementation does (huggingface/safetensors, the format
in its README): an 8-byte little-endian header length (capped), a JSON object of tensors
``{dtype, shape, data_offsets}`` (plus an optional ``__metadata__`` of strings), and a data region
the tensors tile from its first byte to its last, without gaps or overlaps.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from mlwarden.errors import InputError
from mlwarden.registry.loaders import MalformedModel
from mlwarden.scan.formats.safetensors import DTYPE_BITS, MAX_HEADER

# Little-endian, as the format stores every tensor. BF16, F8, F6 and F4 have no NumPy dtype.
NUMPY_DTYPES = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2", "I32": "<i4",
    "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8", "C64": "<c8",
}  # fmt: skip


def looks_like_safetensors(head: bytes) -> bool:
    """The first bytes: a header length, then a JSON object. Loose on purpose (for content no other format
    claims): a file cut short or with a header over the cap is still safetensors, and refused as such."""
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2


def read_safetensors(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a safetensors file as NumPy arrays (copies, writable), after full validation."""
    header, start = _header(data, name)
    spans = _validated(header, len(data) - start, name)
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for tensor, (dtype, shape, begin, _) in spans.items():
        if dtype not in NUMPY_DTYPES:
            raise InputError(
                f"{name}: tensor {tensor!r} is {dtype}, which NumPy cannot hold",
                hint="load this file with torch (safetensors.torch.load_file)",
            )
        raw = np.frombuffer(data, dtype=np.dtype(NUMPY_DTYPES[dtype]), count=math.prod(shape), offset=start + begin)
        tensors[tensor] = raw.reshape(shape).copy()  # _validated matched every span to its shape
    return tensors


def _header(data: bytes, name: str) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise MalformedModel(f"{name}: {len(data)} bytes is shorter than the 8-byte safetensors header length")
    length = int.from_bytes(data[:8], "little")
    if length > MAX_HEADER:
        raise MalformedModel(f"{name}: a safetensors header of {length} bytes is over the {MAX_HEADER}-byte limit")
    if 8 + length > len(data):
        raise MalformedModel(
            f"{name}: the safetensors header is cut short: it claims {length} bytes, the file has "
            f"{len(data) - 8} after the length"
        )
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"), object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MalformedModel(f"{name}: the safetensors header is not valid JSON: {error}") from error
    if not isinstance(header, dict):
        raise MalformedModel(f"{name}: the safetensors header is not a JSON object")
    return header, 8 + length


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Duplicate keys are an error: a parser keeping the first and one keeping the last would disagree."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _validated(header: dict[str, Any], data_size: int, name: str) -> dict[str, tuple[str, list[int], int, int]]:
    spans: dict[str, tuple[str, list[int], int, int]] = {}
    for tensor, info in header.items():
        if tensor == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise MalformedModel(f"{name}: __metadata__ must map strings to strings")
            continue
        spans[tensor] = _tensor(tensor, info, name)
    end = 0
    for tensor, (_, _, begin, stop) in sorted(spans.items(), key=lambda item: (item[1][2], item[1][3])):
        if begin != end:
            kind = "overlaps the tensor before it" if begin < end else "leaves a gap"
            raise MalformedModel(f"{name}: tensor {tensor!r} starts at byte {begin}, expected {end}: it {kind}")
        end = stop
    if end != data_size:
        raise MalformedModel(
            f"{name}: the tensors cover {end} bytes of a {data_size}-byte data region (offsets out of bounds)"
            if end > data_size
            else f"{name}: the tensors cover {end} bytes of a {data_size}-byte data region (trailing bytes)"
        )
    return spans


def _tensor(tensor: str, info: Any, name: str) -> tuple[str, list[int], int, int]:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise MalformedModel(f"{name}: tensor {tensor!r} is not exactly {{dtype, shape, data_offsets}}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_BITS:
        raise MalformedModel(f"{name}: tensor {tensor!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise MalformedModel(f"{name}: tensor {tensor!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(n) is int and n >= 0 for n in offsets)
        or offsets[0] > offsets[1]
    ):
        raise MalformedModel(f"{name}: tensor {tensor!r} has invalid data offsets {offsets!r}")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        raise MalformedModel(
            f"{name}: tensor {tensor!r} spans {offsets[1] - offsets[0]} bytes, but shape {shape} of {dtype} "
            f"needs {bits / 8:g}"
        )
    return dtype, shape, offsets[0], offsets[1]
