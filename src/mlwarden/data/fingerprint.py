"""Row fingerprints: SHA-256 over a canonical, typed encoding of each row (docs/digests.md).

Encoding v1 of a row with columns c1..cn (schema order), all integers little-endian::

    0x00                     the RFC 6962 leaf prefix, so a row digest is a Merkle leaf hash
    tag(c1) .. tag(cn)       one byte each: 0x00 for a null, else the column type's code
    zero bytes               padding up to a multiple of 8 bytes (the header)
    payload(c1) .. (cn)      8 bytes each (16 for decimals); all zero for a null
    tail(c) for each string/binary column, in order: its UTF-8 / raw bytes

Payloads: bool 0 or 1; int, date (days since 1970-01-01) and timestamps (microseconds) two's
complement; float IEEE 754 binary64 after mapping every NaN to 0x7ff8000000000000 and -0.0 to +0.0;
decimal the 16-byte two's complement of the unscaled value (the scale is fixed by the schema); string
and binary the byte length of the tail. The lengths make the encoding prefix-free: two different rows
of one schema never encode to the same bytes. The fixed part is 8-byte aligned so it is assembled a
machine word per value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlwarden.data.columns import zero_scalar
from mlwarden.data.schema import Column, ColumnType, Schema
from mlwarden.data.sha import DIGEST_SIZE, Digests, fixed_rows, sha256_concat

ENCODING_VERSION = 1
CANONICAL_NAN = np.uint64(0x7FF8000000000000)

TAGS: dict[ColumnType, int] = {
    ColumnType.BOOL: 0x01,
    ColumnType.INT: 0x02,
    ColumnType.FLOAT: 0x03,
    ColumnType.STRING: 0x04,
    ColumnType.BINARY: 0x05,
    ColumnType.DATE: 0x06,
    ColumnType.TIMESTAMP: 0x07,
    ColumnType.TIMESTAMP_UTC: 0x08,
    ColumnType.DECIMAL: 0x09,
}
VARIABLE = frozenset({ColumnType.STRING, ColumnType.BINARY})
WORD = 8

Words = npt.NDArray[np.uint64]


def words(column: Column) -> int:
    """How many 8-byte payload words a column takes."""
    return 2 if column.type is ColumnType.DECIMAL else 1


def header_words(schema: Schema) -> int:
    return -(-(1 + len(schema.columns)) // WORD)


CHUNK_ROWS = 1 << 16  # rows per engine call: the fixed part stays in cache, its buffer is reused


def row_digests(batch: pa.RecordBatch, schema: Schema) -> Digests:
    """The (n, 32) row digests of a batch already conformed to ``schema`` (``columns.conform``)."""
    first = header_words(schema)
    buffer = np.empty((min(batch.num_rows, CHUNK_ROWS), first + sum(words(c) for c in schema.columns)), "<u8")
    parts = [
        _chunk_digests(batch.slice(start, CHUNK_ROWS), schema, buffer) for start in range(0, batch.num_rows, CHUNK_ROWS)
    ]
    return np.concatenate(parts) if parts else np.empty((0, DIGEST_SIZE), dtype=np.uint8)


def _chunk_digests(batch: pa.RecordBatch, schema: Schema, buffer: Words) -> Digests:
    n = batch.num_rows
    first = header_words(schema)
    fixed = buffer[:n]
    fixed[:, :first] = _header(batch, schema, first)
    tails: list[pa.Array] = []
    word = first
    for column, array in zip(schema.columns, batch.columns, strict=True):
        if column.type in VARIABLE:
            tail = _filled_tail(column, array)
            fixed[:, word] = _lengths(tail)
            tails.append(tail)
        elif column.type is ColumnType.DECIMAL:
            fixed[:, word : word + 2] = _decimal_words(array)
        else:
            fixed[:, word] = _payload(column, array)
        word += words(column)
    return sha256_concat([fixed_rows(fixed.view(np.uint8).reshape(n, -1)), *tails])


def _header(batch: pa.RecordBatch, schema: Schema, first: int) -> Words:
    """The leaf prefix and the tags, as words: one template row, with nulls' tags zeroed where present."""
    template = np.zeros(first * WORD, dtype=np.uint8)
    template[1 : 1 + len(schema.columns)] = [TAGS[c.type] for c in schema.columns]
    nullable = [i for i, array in enumerate(batch.columns) if array.null_count]
    if not nullable:
        return template.view("<u8")
    tags = np.tile(template, (batch.num_rows, 1))
    for i in nullable:
        tags[:, 1 + i] *= _validity(batch.column(i))
    return tags.view("<u8")


def _validity(array: pa.Array) -> npt.NDArray[np.bool_]:
    """True where the value is present, read off the validity bitmap (LSB first, Arrow's layout)."""
    bitmap = array.buffers()[0]
    if bitmap is None:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(bool)


def _filled_tail(column: Column, array: pa.Array) -> pa.Array:
    if array.null_count:
        array = pc.fill_null(array, zero_scalar(array.type))
    return array.cast(pa.large_binary())


def _lengths(tail: pa.Array) -> Words:
    offsets = np.frombuffer(tail.buffers()[1], dtype="<i8", count=tail.offset + len(tail) + 1)[tail.offset :]
    return np.diff(offsets).astype("<u8")


def _payload(column: Column, array: pa.Array) -> Words:
    kind = column.type
    if kind is ColumnType.BOOL:
        values = np.unpackbits(np.frombuffer(array.buffers()[1], dtype=np.uint8), bitorder="little")
        return (values[array.offset : array.offset + len(array)] & _validity(array)).astype("<u8")
    if array.null_count:
        array = pc.fill_null(array, zero_scalar(array.type))
    if kind is ColumnType.FLOAT:
        return _canonical_float_bits(_buffer_values(array, np.dtype("<f8")))
    dtype = np.dtype("<i4") if kind is ColumnType.DATE else np.dtype("<i8")
    return _buffer_values(array, dtype).astype("<i8").view("<u8")


def _decimal_words(array: pa.Array) -> Words:
    if array.null_count:
        array = pc.fill_null(array, zero_scalar(array.type))
    return _buffer_values(array, np.dtype("<u8"), per_value=2).reshape(-1, 2)


def _buffer_values(array: pa.Array, dtype: np.dtype[Any], per_value: int = 1) -> npt.NDArray[Any]:
    """The values of a fixed-width array, straight from its data buffer (no copy)."""
    count = (array.offset + len(array)) * per_value
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=count)[array.offset * per_value :]


def _canonical_float_bits(values: npt.NDArray[Any]) -> Words:
    floats = np.where(values == 0.0, 0.0, values).astype("<f8")  # -0.0 == 0.0, so both become +0.0
    bits = floats.view("<u8").copy()
    bits[np.isnan(floats)] = CANONICAL_NAN
    return bits
