"""The checks a contract's column rules compile to; registered under ``mlwarden.checks`` like plugins.

Each is a polars expression over one column, true on failing rows. Nulls pass every check but
``not_null`` (nullability is its own rule). A NaN is outside every range: it fails ``min`` and
``max`` as well as ``finite``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mlwarden.data.columns import large_string_array
from mlwarden.data.schema import ColumnType
from mlwarden.quality.interface import Check


def _column(check: Check) -> pl.Expr:
    if not check.column:
        raise ValueError(f"{type(check).__name__} needs a column")
    return pl.col(check.column)


def _kind(params: Mapping[str, Any]) -> ColumnType:
    name = str(params.get("type", "string"))
    return ColumnType.DECIMAL if name.startswith("decimal") else ColumnType(name)


def literal(value: Any, kind: ColumnType) -> Any:
    """A contract's value as the column's type, or ValueError (a date range on an int column...)."""
    try:
        if kind is ColumnType.DATE and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if kind in (ColumnType.TIMESTAMP, ColumnType.TIMESTAMP_UTC) and isinstance(value, str):
            stamp = dt.datetime.fromisoformat(value)
            if kind is ColumnType.TIMESTAMP_UTC:
                return stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
            return stamp
        if kind is ColumnType.DECIMAL and not isinstance(value, bool):
            return Decimal(str(value))
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{value!r} is not a {kind.value}: {exc}") from None
    numeric = kind in (ColumnType.INT, ColumnType.FLOAT)
    if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{value!r} is not a number, but the column is {kind.value}")
    if kind is ColumnType.STRING and not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string, but the column is a string column")
    if kind is ColumnType.BOOL and not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false, but the column is bool")
    return value


class NotNull(Check):
    def failing(self) -> pl.Expr:
        return _column(self).is_null()

    def count_failing(self, batch: pa.Table) -> int | None:
        return int(batch.column(self.column or "").null_count)  # Arrow keeps the count: no pass at all

    def describe(self) -> str:
        return "not null"


class Minimum(Check):
    def failing(self) -> pl.Expr:
        kind = _kind(self.params)
        column = _column(self)
        below = column < pl.lit(literal(self.params["value"], kind))
        return below | column.is_nan() if kind is ColumnType.FLOAT else below

    def describe(self) -> str:
        return f">= {self.params['value']}"


class Maximum(Check):
    def failing(self) -> pl.Expr:
        kind = _kind(self.params)
        column = _column(self)
        above = column > pl.lit(literal(self.params["value"], kind))
        return above | column.is_nan() if kind is ColumnType.FLOAT else above

    def describe(self) -> str:
        return f"<= {self.params['value']}"


class Allowed(Check):
    def failing(self) -> pl.Expr:
        kind = _kind(self.params)
        values = [literal(v, kind) for v in self.params["values"]]
        column = _column(self)
        return column.is_not_null() & ~column.is_in(values)

    def count_failing(self, batch: pa.Table) -> int | None:
        """Strings are looked up in Arrow: handing a string column to polars copies every string."""
        if _kind(self.params) is not ColumnType.STRING:
            return None
        values = large_string_array([literal(v, ColumnType.STRING) for v in self.params["values"]])
        column = batch.column(self.column or "")
        outside = pc.and_(pc.invert(pc.is_in(column, value_set=values)), pc.is_valid(column))
        return int(pc.sum(outside).as_py() or 0)

    def describe(self) -> str:
        values = list(self.params["values"])
        shown = ", ".join(map(str, values[:10])) + (f" ... ({len(values)} values)" if len(values) > 10 else "")
        return f"one of {shown}"


class Regex(Check):
    def failing(self) -> pl.Expr:
        if _kind(self.params) is not ColumnType.STRING:
            raise ValueError("regex applies to string columns")
        return ~_column(self).str.contains(str(self.params["pattern"]))

    def describe(self) -> str:
        return f"matches {self.params['pattern']}"


class Length(Check):
    def failing(self) -> pl.Expr:
        if _kind(self.params) is not ColumnType.STRING:
            raise ValueError("min_length and max_length apply to string columns")
        length = _column(self).str.len_chars()
        fails = pl.lit(False)
        if self.params.get("min") is not None:
            fails = fails | (length < int(self.params["min"]))
        if self.params.get("max") is not None:
            fails = fails | (length > int(self.params["max"]))
        return fails

    def describe(self) -> str:
        return f"length in [{self.params.get('min', 0)}, {self.params.get('max', 'any')}]"


class Finite(Check):
    def failing(self) -> pl.Expr:
        if _kind(self.params) is not ColumnType.FLOAT:
            raise ValueError("finite applies to float columns")
        return ~_column(self).is_finite()

    def describe(self) -> str:
        return "finite (no NaN or infinity)"


class Unique(Check):
    """Unique within the ingested batch (the runner carries it across record batches)."""

    across_batches = True

    def failing(self) -> pl.Expr:
        column = _column(self)
        return column.is_not_null() & column.is_duplicated()

    def describe(self) -> str:
        return "unique within the batch"


BUILTIN: dict[str, type[Check]] = {
    "not_null": NotNull,
    "min": Minimum,
    "max": Maximum,
    "allowed": Allowed,
    "regex": Regex,
    "length": Length,
    "finite": Finite,
    "unique": Unique,
}
