"""safetensors: an 8-byte header length, a JSON header, then raw tensor bytes (no code, by design).

The header is checked as the reference implementation checks it (huggingface/safetensors, format in
its README): size bounded, a JSON object of tensors with a known dtype, a shape, and data offsets that
match that shape and tile the data region without gaps or overlaps. A header that fails is ``unsafe``:
other parsers may read such a file differently. String metadata is searched for hidden pickles.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlwarden.scan.context import ScanContext
from mlwarden.scan.model import Severity
from mlwarden.scan.nested import decode_candidate
from mlwarden.scan.source import Stream

DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6, "C64": 64,
}  # fmt: skip
MAX_HEADER = 100_000_000  # the reference implementation's limit


class SafetensorsScanner:
    name = "safetensors"
    priority = 25

    def sniff(self, head: bytes, size: int | None) -> bool:
        if len(head) < 10 or head[8:9] != b"{":
            return False
        length = int.from_bytes(head[:8], "little")
        return 2 <= length <= MAX_HEADER and (size is None or length + 8 <= size)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        length = int.from_bytes(stream.read_exact(8), "little")
        try:
            header = json.loads(stream.read_exact(length))
        except (ValueError, RecursionError):
            return False
        ctx.recognize(self.name)
        problems = _problems(header, stream.remaining)
        for problem in problems[:20]:
            ctx.add("malformed-safetensors", Severity.UNSAFE, problem)
        if isinstance(header, dict):
            _metadata(header.get("__metadata__"), ctx)
        return True


def _problems(header: Any, data_size: int | None) -> list[str]:
    if not isinstance(header, dict):
        return ["the header is not a JSON object"]
    spans, problems = [], []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                problems.append("__metadata__ must map strings to strings")
            continue
        problem = _tensor_problem(name, info)
        if problem:
            problems.append(problem)
        else:
            spans.append((info["data_offsets"][0], info["data_offsets"][1], name))
    spans.sort()
    end = 0
    for start, stop, name in spans:
        if start != end:
            problems.append(f"tensor {name!r} starts at {start}, expected {end} (gap or overlap)")
        end = max(end, stop)
    if data_size is not None and end != data_size:
        problems.append(f"tensors cover {end} bytes of a {data_size}-byte data region")
    return problems


def _tensor_problem(name: str, info: Any) -> str | None:
    if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
        return f"tensor {name!r} is not {{dtype, shape, data_offsets}}"
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BITS:
        return f"tensor {name!r} has unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        return f"tensor {name!r} has an invalid shape"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) and n >= 0 for n in offsets)
        or offsets[0] > offsets[1]
    ):
        return f"tensor {name!r} has invalid data offsets"
    expected = math.prod(shape) * DTYPE_BITS[dtype]
    if expected % 8 or expected // 8 != offsets[1] - offsets[0]:
        return f"tensor {name!r}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}"
    return None


def _metadata(metadata: Any, ctx: ScanContext) -> None:
    if not isinstance(metadata, dict):
        return
    for key, value in metadata.items():
        if isinstance(value, str) and decode_candidate(value.encode(), ctx.limits.max_nested_decode):
            ctx.add("hidden-pickle", Severity.UNSAFE, f"metadata {key!r} holds a pickle or archive")
