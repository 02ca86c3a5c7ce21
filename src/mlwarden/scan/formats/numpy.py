"""NumPy ``.npy`` files: a header, then raw data, or a pickle when the dtype holds Python objects.

Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html. The header is a Python
literal, parsed with ``ast.literal_eval`` (literals only, size-bounded as numpy bounds it). Object
arrays are the dangerous case: ``np.load(..., allow_pickle=True)`` unpickles what follows the header.
"""

from __future__ import annotations

import ast
import math
import re

from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.pickle import scan_pickles
from mlwarden.scan.model import Severity
from mlwarden.scan.source import Stream

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20
_TYPESTR = re.compile(r"[<>|=]?([a-zA-Z])(\d*)")
_UNIT = {"U": 4}


class NumpyScanner:
    name = "numpy"
    priority = 20

    def sniff(self, head: bytes, size: int | None) -> bool:
        return head.startswith(MAGIC)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        stream.read_exact(len(MAGIC))
        major = stream.read_exact(2)[0]
        if major not in (1, 2, 3):
            ctx.recognize(self.name)
            ctx.add("unsupported-format", Severity.UNVERIFIABLE, f"npy format version {major} is unknown")
            return True
        length = int.from_bytes(stream.read_exact(2 if major == 1 else 4), "little")
        if length > MAX_HEADER:
            ctx.recognize(self.name)
            ctx.add("limit-exceeded", Severity.UNVERIFIABLE, f"npy header of {length} bytes")
            return True
        header = _parse_header(stream.read_exact(length), major)
        ctx.recognize(self.name)
        if header is None:
            ctx.add("malformed-npy", Severity.UNSAFE, "the npy header is not the dictionary numpy writes")
            return True
        descr, shape = header
        if _has_object(descr):
            if not scan_pickles(stream, ctx, label="numpy object array"):
                ctx.add("malformed-npy", Severity.UNSAFE, "an object array without a valid pickle after its header")
            return True
        _check_size(stream, ctx, descr, shape)
        return True


def _parse_header(raw: bytes, major: int) -> tuple[object, tuple[int, ...]] | None:
    try:
        value = ast.literal_eval(raw.decode("utf-8" if major >= 3 else "latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
        return None
    shape = value["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        return None
    return value["descr"], shape


def _has_object(descr: object) -> bool:
    if isinstance(descr, str):
        match = _TYPESTR.match(descr)
        return match is None or match.group(1) == "O"
    if isinstance(descr, list):  # structured: [(name, descr[, shape]), ...]
        return any(not isinstance(f, tuple) or len(f) < 2 or _has_object(f[1]) for f in descr)
    return True  # anything else is not a dtype numpy writes: assume the worst


def _check_size(stream: Stream, ctx: ScanContext, descr: object, shape: tuple[int, ...]) -> None:
    if not isinstance(descr, str):
        return
    match = _TYPESTR.match(descr)
    if match is None or not match.group(2):
        return
    expected = math.prod(shape) * int(match.group(2)) * _UNIT.get(match.group(1), 1)
    left = stream.remaining
    if left is not None and left != expected:
        word = "shorter" if left < expected else "longer"
        ctx.add("npy-size", Severity.INFO, f"array data is {word} than the header says ({left} vs {expected} bytes)")
