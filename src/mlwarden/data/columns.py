"""Inferring a dataset's schema from Arrow data, and conforming each batch to it.

A dataset's schema is inferred from its first batch and then enforced: every later batch must have the
same columns (in any order; they are put in schema order) and each column must convert *safely* to the
schema's type (an int column may arrive as floats with integral values, never as 1.5). After
``conform`` a batch has the canonical Arrow types below whatever library or file format it came from,
which is what makes the row digests independent of both (docs/digests.md).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mlwarden.data.schema import MAX_COLUMN_NAME, MAX_COLUMNS, Column, ColumnType, Schema
from mlwarden.errors import ContractMismatch


def infer_schema(arrow_schema: pa.Schema) -> Schema:
    """The contract a first batch implies: one logical type per column, or a clear refusal."""
    if len(arrow_schema) == 0:
        raise ContractMismatch("the data has no columns", hint="check the file's header and format")
    if len(arrow_schema) > MAX_COLUMNS:
        raise ContractMismatch(f"the data has {len(arrow_schema)} columns; at most {MAX_COLUMNS} are supported")
    names = arrow_schema.names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ContractMismatch(f"duplicate column names: {', '.join(map(repr, duplicates))}")
    return Schema(tuple(_infer_column(field) for field in arrow_schema))


def _infer_column(field: pa.Field) -> Column:
    name = field.name
    if not name or len(name) > MAX_COLUMN_NAME or any(ord(ch) < 32 for ch in name):
        raise ContractMismatch(f"invalid column name {name[:MAX_COLUMN_NAME]!r}: empty, too long or control characters")
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise ContractMismatch(f"column {name!r}: decimals wider than 38 digits are not supported")
        return Column(name, ColumnType.DECIMAL, t.precision, t.scale)
    logical = _logical(t)
    if logical is None:
        raise ContractMismatch(
            f"column {name!r} has unsupported type {t}",
            hint="supported: bool, integers, floats, strings, binary, dates, timestamps, decimals",
        )
    return Column(name, logical)


def _logical(t: pa.DataType) -> ColumnType | None:
    checks = (
        (pa.types.is_boolean, ColumnType.BOOL),
        (pa.types.is_integer, ColumnType.INT),
        (pa.types.is_floating, ColumnType.FLOAT),
        (_is_text, ColumnType.STRING),
        (pa.types.is_null, ColumnType.STRING),  # an all-empty CSV column: text until proven otherwise
        (_is_bytes, ColumnType.BINARY),
        (pa.types.is_date, ColumnType.DATE),
    )
    for check, logical in checks:
        if check(t):
            return logical
    if pa.types.is_timestamp(t):
        return ColumnType.TIMESTAMP if t.tz is None else ColumnType.TIMESTAMP_UTC
    return None


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _is_bytes(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )


def conform(batch: pa.RecordBatch, schema: Schema) -> pa.RecordBatch:
    """``batch`` with the schema's columns, in its order, in canonical types; or ``ContractMismatch``."""
    present = batch.schema.names
    missing = [n for n in schema.names if n not in present]
    extra = [n for n in present if n not in schema.names]
    if missing or extra:
        parts = [
            f"missing column(s) {', '.join(map(repr, missing))}" if missing else "",
            f"unexpected column(s) {', '.join(map(repr, extra))}" if extra else "",
        ]
        raise ContractMismatch(
            "the batch does not match the dataset's schema: " + "; ".join(p for p in parts if p),
            hint="the schema is fixed at the first ingest: " + ", ".join(schema.names),
        )
    arrays = [_cast(batch.column(c.name), c) for c in schema.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema.arrow_schema())


def _cast(array: pa.Array, column: Column) -> pa.Array:
    target = column.arrow_type()
    if array.type == target:
        return array
    source = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
    if not _convertible(source, column):
        raise ContractMismatch(
            f"column {column.name!r} is {column.type_name} in the dataset's schema but the batch has {array.type}",
            hint="convert the column, or ingest into a new dataset",
        )
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ContractMismatch(
            f"column {column.name!r}: values of type {array.type} do not fit {column.type_name}: {exc}",
            hint="fix the values, or ingest into a new dataset",
        ) from None


def _convertible(source: pa.DataType, column: Column) -> bool:
    """Which source types may be read as a column type: same logical family, or a lossless widening."""
    if pa.types.is_null(source):
        return True
    if column.type is ColumnType.DECIMAL:
        return bool(pa.types.is_decimal(source) or pa.types.is_integer(source))
    logical = _logical(source)
    if logical is None:
        return False
    if logical is column.type:
        return True
    widening = {
        (ColumnType.INT, ColumnType.FLOAT),  # a safe cast refuses ints a float cannot hold exactly
        (ColumnType.FLOAT, ColumnType.INT),  # a safe cast refuses fractions
    }
    return (logical, column.type) in widening


# pyarrow imports pandas (~0.3 s) the first time it converts a Python or NumPy value (pa.array, pa.scalar)
# when pandas is installed. Ingestion builds the few arrays and scalars it needs from buffers instead.


def int64_array(values: Any) -> pa.Array:
    """An int64 Arrow array over a NumPy integer array (take indices), without pyarrow's conversion."""
    import numpy as np

    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def zero_scalar(arrow_type: pa.DataType) -> pa.Scalar:
    """The type's zero (0, 0.0, false, "", b"", 1970-01-01, 0E-s), to fill nulls with."""
    if pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type):
        offsets = pa.py_buffer(bytes(16))  # two int64 offsets: one empty value
        return pa.Array.from_buffers(arrow_type, 1, [None, offsets, pa.py_buffer(b"")])[0]
    if pa.types.is_string(arrow_type) or pa.types.is_binary(arrow_type):
        return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(bytes(8)), pa.py_buffer(b"")])[0]
    width = max(arrow_type.bit_width // 8, 1)
    return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(bytes(width))])[0]


def large_string_array(values: list[str]) -> pa.Array:
    """A large_string Arrow array of Python strings, without pyarrow's conversion."""
    import numpy as np

    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def float64_values(column: pa.Array | pa.ChunkedArray) -> Any:
    """A numeric, boolean or temporal column as a NumPy float64 array with nulls as NaN, read from its
    buffers (dates and timestamps by their physical value: days, microseconds). A fresh, writable array
    whenever there are nulls; otherwise possibly a view of Arrow's memory."""
    import numpy as np
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_temporal(array.type):
        array = array.view(pa.int32() if pa.types.is_date32(array.type) else pa.int64())
    values = pc.cast(array, pa.float64()) if array.type != pa.float64() else array
    floats = np.frombuffer(values.buffers()[1], dtype=np.float64)[values.offset : values.offset + len(values)]
    if values.null_count:
        bits = np.unpackbits(np.frombuffer(values.buffers()[0], dtype=np.uint8), bitorder="little")
        floats = np.where(bits[values.offset : values.offset + len(values)].astype(bool), floats, np.nan)
    return floats
