"""The dataset schema (its contract): logical column types and their canonical Arrow types.

Importing this module does not import pyarrow: the metadata side of datasets (the CLI's start-up, audit
reconciliation) only needs the JSON form. ``columns`` converts batches to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from mlwarden.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_COLUMNS = 4096
MAX_COLUMN_NAME = 256
_DECIMAL_RE = re.compile(r"decimal\((\d{1,2}),(-?\d{1,2})\)")


class ColumnType(StrEnum):
    """The logical types a column can have; each has one canonical Arrow type and one encoding."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    BINARY = "binary"
    DATE = "date"
    TIMESTAMP = "timestamp"  # naive wall-clock time, microseconds
    TIMESTAMP_UTC = "timestamp_utc"  # an instant, microseconds since the epoch in UTC
    DECIMAL = "decimal"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    precision: int = 0  # decimals only
    scale: int = 0

    @property
    def type_name(self) -> str:
        if self.type is ColumnType.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        return self.type.value

    def arrow_type(self) -> pa.DataType:
        if self.type is ColumnType.DECIMAL:
            import pyarrow as pa

            return pa.decimal128(self.precision, self.scale)
        return _arrow_types()[self.type]


@cache
def _arrow_types() -> dict[ColumnType, Any]:
    import pyarrow as pa

    return {
        ColumnType.BOOL: pa.bool_(),
        ColumnType.INT: pa.int64(),
        ColumnType.FLOAT: pa.float64(),
        ColumnType.STRING: pa.large_string(),
        ColumnType.BINARY: pa.large_binary(),
        ColumnType.DATE: pa.date32(),
        ColumnType.TIMESTAMP: pa.timestamp("us"),
        ColumnType.TIMESTAMP_UTC: pa.timestamp("us", tz="UTC"),
    }


@dataclass(frozen=True)
class Schema:
    """The ordered columns of a dataset: its contract."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_json(self) -> list[dict[str, str]]:
        return [{"name": c.name, "type": c.type_name} for c in self.columns]

    def canonical(self) -> bytes:
        """The bytes the schema digest is taken over (docs/digests.md, "Schema")."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    def digest(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(c.name, c.arrow_type()) for c in self.columns])

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise UsageError(f"no column {name!r}", hint="columns: " + ", ".join(self.names))

    @classmethod
    def from_json(cls, items: list[dict[str, str]]) -> Schema:
        return cls(tuple(_column_from_json(item["name"], item["type"]) for item in items))


def _column_from_json(name: str, type_name: str) -> Column:
    match = _DECIMAL_RE.fullmatch(type_name)
    if match:
        return Column(name, ColumnType.DECIMAL, int(match.group(1)), int(match.group(2)))
    return Column(name, ColumnType(type_name))
