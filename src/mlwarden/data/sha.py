"""SHA-256 of many messages at once, in a columnar engine.

A Python loop over ``hashlib`` tops out near 1.6M short messages per second; Apache DataFusion's
``sha256`` kernel runs over an Arrow binary column at several times that on one core. The digests are
plain SHA-256 (FIPS 180-4), so nothing about them depends on the engine: tests compare them with
``hashlib``. One partition keeps the work on one core and the output in input order.

Only DataFusion's compiled core (``datafusion._internal``) is loaded, through its SQL interface: the
Python package around it imports pandas, which costs ~0.3 s of every large ingest and buys nothing
here. The core loads in a few milliseconds. Below ``ENGINE_MIN_ROWS`` messages in a process that has
not loaded it yet (an append of a few thousand rows), the loop does the work and the engine stays
unloaded; once loaded, it takes every batch of ``ENGINE_MIN_ROWS_LOADED`` messages or more (the upper
levels of a tree).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

DIGEST_SIZE = 32
ENGINE_MIN_ROWS = 32_768
ENGINE_MIN_ROWS_LOADED = 1_024
Digests = npt.NDArray[np.uint8]  # shape (n, 32)

_LOCK = threading.Lock()
_SCRATCH = "mlwarden_rows"
_CORE = "datafusion._internal"


@cache
def _engine() -> tuple[Any, Any]:
    """(DataFusion's core module, a one-partition session)."""
    core = sys.modules.get(_CORE) or _load_core()
    return core, core.SessionContext(core.SessionConfig().with_target_partitions(1), None)


def _load_core() -> Any:
    """Load ``datafusion._internal`` without running ``datafusion/__init__.py``.

    It goes into ``sys.modules`` under its own name, so a later ``import datafusion`` (by a user's
    code) finds and reuses it instead of initialising the extension twice.
    """
    package = importlib.util.find_spec("datafusion")
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("the hash engine needs the datafusion package", name="datafusion")
    folder = Path(next(iter(package.submodule_search_locations)))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = sorted(p for p in folder.glob("_internal.*") if p.name.endswith(suffixes))
    if not found:
        raise ModuleNotFoundError(f"no compiled core in {folder}", name=_CORE)
    loader = importlib.machinery.ExtensionFileLoader(_CORE, str(found[0]))
    spec = importlib.util.spec_from_file_location(_CORE, found[0], loader=loader)
    if spec is None:
        raise ModuleNotFoundError(f"cannot load {found[0]}", name=_CORE)
    core = importlib.util.module_from_spec(spec)
    loader.exec_module(core)
    sys.modules[_CORE] = core
    return core


def _context() -> tuple[Any, Any]:
    with _LOCK:
        return _engine()


def _loaded() -> bool:
    return _engine.cache_info().currsize > 0


def warm_up() -> None:
    """Start loading the engine in the background, so that it overlaps reading the input."""
    threading.Thread(target=_context, name="mlwarden-hash-engine", daemon=True).start()


def sha256_concat(columns: list[pa.Array]) -> Digests:
    """Row i's digest is SHA-256 of the concatenation of row i of every (binary) column."""
    if not columns:
        raise ValueError("nothing to hash")
    n = len(columns[0])
    if n == 0:
        return np.empty((0, DIGEST_SIZE), dtype=np.uint8)
    if n < ENGINE_MIN_ROWS and not (n >= ENGINE_MIN_ROWS_LOADED and _loaded()):
        return _sha256_loop(columns, n)
    names = [f"c{i}" for i in range(len(columns))]
    message = f"concat({', '.join(names)})" if len(names) > 1 else names[0]
    batch = pa.RecordBatch.from_arrays(columns, names=names)
    core, ctx = _context()
    with _LOCK:
        ctx.register_record_batches(_SCRATCH, [[batch]])
        try:
            # Only generated names (c0, c1, ...) reach the query; it may only read.
            sql = f"SELECT sha256({message}) AS d FROM {_SCRATCH}"  # noqa: S608
            query = ctx.sql_with_options(sql, core.SQLOptions().with_allow_ddl(False).with_allow_dml(False))
            result = query.collect()
        finally:
            ctx.deregister_table(_SCRATCH)  # keep nothing between calls
    return _digest_matrix([b.column(0) for b in result], n)


def _sha256_loop(columns: list[pa.Array], n: int) -> Digests:
    """The same digests with ``hashlib``, one message at a time."""
    import hashlib

    parts = [_value_slices(column) for column in columns]
    out = bytearray()
    for i in range(n):
        hasher = hashlib.sha256()
        for data, offsets in parts:
            hasher.update(data[offsets[i] : offsets[i + 1]])
        out += hasher.digest()
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(n, DIGEST_SIZE)


def _value_slices(column: pa.Array) -> tuple[memoryview, list[int]]:
    """A binary column's value bytes and its n + 1 offsets into them."""
    offset_type = "<i8" if pa.types.is_large_binary(column.type) else "<i4"
    offsets = np.frombuffer(column.buffers()[1], dtype=offset_type, count=column.offset + len(column) + 1)
    data = column.buffers()[2]
    return memoryview(data if data is not None else b""), offsets[column.offset :].tolist()


def _digest_matrix(chunks: list[pa.Array], n: int) -> Digests:
    """The engine's binary column of 32-byte values as an (n, 32) matrix, read off its data buffers."""
    parts = []
    for chunk in chunks:
        if chunk.null_count or not (pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type)):
            raise RuntimeError(f"the hash engine returned {chunk.type} with {chunk.null_count} nulls")
        size = len(chunk)
        offset_type = "<i8" if pa.types.is_large_binary(chunk.type) else "<i4"
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type, count=chunk.offset + size + 1)[chunk.offset :]
        start = int(offsets[0])
        if int(offsets[-1]) - start != size * DIGEST_SIZE:
            raise RuntimeError("the hash engine returned values that are not 32 bytes long")
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8, count=start + size * DIGEST_SIZE)[start:]
        parts.append(data.reshape(size, DIGEST_SIZE))
    out = np.concatenate(parts) if parts else np.empty((0, DIGEST_SIZE), dtype=np.uint8)
    if len(out) != n:
        raise RuntimeError(f"the hash engine returned {len(out)} digests for {n} rows")
    return out


def fixed_rows(matrix: npt.NDArray[np.uint8]) -> pa.Array:
    """A binary column whose row i is ``matrix[i]``, without copying the bytes."""
    n, width = matrix.shape
    if not matrix.flags.c_contiguous:
        raise ValueError("rows must be contiguous")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(matrix)])


def sha256_rows(matrix: npt.NDArray[np.uint8]) -> Digests:
    """SHA-256 of each row of a fixed-width byte matrix."""
    return sha256_concat([fixed_rows(matrix)])
