"""The stored JSON form of a profile, version 1, and its strict reader.

::

    {"version": 1, "rows": N, "columns": [
      {"name": str, "type": "int" | "decimal(10,2)" | ..., "count": N, "nulls": N, "nan": N, "inf": N,
       "min": number | str | null, "max": ..., "mean": number | null, "variance": number | null,
       "quantiles": base64 of a serialized DataSketches KLL doubles sketch | null,
       "distinct": base64 of the 4096 HyperLogLog registers (one byte each, 0..53),
       "frequent": {"capacity": N, "error": N, "items": [[value, count], ...]} | null,
       "lengths": {"min": N, "max": N, "total": N} | null}, ...]}

Moments that overflowed a double are written as the strings "inf" / "-inf" (strict JSON has no
Infinity). The reader accepts exactly this: a missing or unknown key, a wrong type, an inconsistent
count or undecodable sketch bytes raise ``ProfileError`` naming the offending path, because a profile
feeds drift tests and gates, where a silently misread number is worse than a refusal.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from mlwarden.data.schema import Column, ColumnType, Schema
from mlwarden.quality import sketches
from mlwarden.quality._scan import FREQUENT, NUMERIC, QUANTILED, VARIABLE
from mlwarden.quality.profile import PROFILE_VERSION, ColumnProfile, Lengths, Profile, ProfileError, Scalar
from mlwarden.quality.sketches import HLL_MAX_RANK, HLL_REGISTERS, FrequentItems

_COLUMN_KEYS = frozenset(
    {"name", "type", "count", "nulls", "nan", "inf", "min", "max", "mean", "variance"}
    | {"quantiles", "distinct", "frequent", "lengths"}
)
_SPECIAL = {"inf": math.inf, "-inf": -math.inf}


def profile_to_json(profile: Profile) -> dict[str, Any]:
    return {"version": PROFILE_VERSION, "rows": profile.rows, "columns": [_column_to_json(c) for c in profile.columns]}


def _column_to_json(c: ColumnProfile) -> dict[str, Any]:
    frequent = None
    if c.frequent is not None:
        items = [[value, count] for value, count in c.frequent.items]
        frequent = {"capacity": c.frequent.capacity, "error": c.frequent.error, "items": items}
    lengths = None
    if c.lengths is not None:
        lengths = {"min": c.lengths.minimum, "max": c.lengths.maximum, "total": c.lengths.total}
    return {
        "name": c.name,
        "type": c.type,
        "count": c.count,
        "nulls": c.nulls,
        "nan": c.nan,
        "inf": c.inf,
        "min": c.minimum,
        "max": c.maximum,
        "mean": json_float(c.mean),
        "variance": json_float(c.variance),
        "quantiles": None if c.quantiles is None else base64.b64encode(c.quantiles).decode("ascii"),
        "distinct": base64.b64encode(c.distinct).decode("ascii"),
        "frequent": frequent,
        "lengths": lengths,
    }


def json_float(value: float | None) -> float | str | None:
    """A float as strict JSON: infinities as "inf" / "-inf" (NaN cannot occur: moments skip it)."""
    if value is None or math.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


class _Object:
    """Typed access to one JSON object with exactly the expected keys; errors name the path."""

    def __init__(self, data: object, where: str, keys: frozenset[str]) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: expected an object, got {_kind(data)}")
        missing, unknown = sorted(keys - data.keys()), sorted(map(str, data.keys() - keys))
        if missing or unknown:
            raise ProfileError(f"{where}: missing key(s) {missing}, unknown key(s) {unknown}")
        self.data, self.where = data, where

    def fail(self, key: str, expected: str) -> ProfileError:
        return ProfileError(f"{self.where}.{key}: expected {expected}, got {_kind(self.data[key])}")

    def count(self, key: str) -> int:
        value = self.data[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(key, "a non-negative integer")
        return value

    def text(self, key: str) -> str:
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        return value

    def number(self, key: str) -> float | None:
        value = self.data[key]
        if value is None:
            return None
        if isinstance(value, str) and value in _SPECIAL:
            return _SPECIAL[value]
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise self.fail(key, 'a finite number, "inf", "-inf" or null')

    def blob(self, key: str) -> bytes:
        value = self.data[key]
        if not isinstance(value, str):
            raise self.fail(key, "a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(key, "valid base64") from None

    def child(self, key: str, keys: frozenset[str]) -> _Object | None:
        value = self.data[key]
        return None if value is None else _Object(value, f"{self.where}.{key}", keys)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def profile_from_json(data: Any) -> Profile:
    top = _Object(data, "profile", frozenset({"version", "rows", "columns"}))
    version = top.data["version"]
    if version != PROFILE_VERSION or isinstance(version, bool):
        raise ProfileError(
            f"profile version {version!r} is not supported (this mlwarden reads version {PROFILE_VERSION})",
            hint="upgrade mlwarden, or profile the dataset version again",
        )
    rows = top.count("rows")
    items = top.data["columns"]
    if not isinstance(items, list):
        raise top.fail("columns", "a list")
    columns = tuple(_column_from_json(item, f"profile.columns[{i}]", rows) for i, item in enumerate(items))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ProfileError("profile.columns: duplicate column names")
    return Profile(rows, columns)


def _column_from_json(data: object, where: str, rows: int) -> ColumnProfile:
    obj = _Object(data, where, _COLUMN_KEYS)
    column = _schema_column(obj)
    kind = column.type
    count, nulls, nan, inf = (obj.count(key) for key in ("count", "nulls", "nan", "inf"))
    if count != rows or nulls + nan + inf > count or (kind is not ColumnType.FLOAT and nan + inf):
        raise ProfileError(f"{where}: inconsistent counts (rows {rows}, count {count}, nulls {nulls}, nan {nan})")
    profile = ColumnProfile(
        name=column.name,
        type=column.type_name,
        count=count,
        nulls=nulls,
        nan=nan,
        inf=inf,
        minimum=_extreme(obj, "min", kind),
        maximum=_extreme(obj, "max", kind),
        mean=obj.number("mean"),
        variance=obj.number("variance"),
        quantiles=None if obj.data["quantiles"] is None else obj.blob("quantiles"),
        distinct=_registers(obj),
        frequent=_frequent(obj),
        lengths=_lengths(obj),
    )
    _check_parts(profile, kind, where)
    _check_sketch(profile, where)
    return profile


def _schema_column(obj: _Object) -> Column:
    name, type_name = obj.text("name"), obj.text("type")
    try:
        return Schema.from_json([{"name": name, "type": type_name}]).columns[0]
    except (ValueError, KeyError):
        raise ProfileError(f"{obj.where}.type: unknown column type {type_name!r}") from None


def _extreme(obj: _Object, key: str, kind: ColumnType) -> Scalar:
    value = obj.data[key]
    if value is None:
        return None
    if kind is ColumnType.STRING:
        return obj.text(key)
    if kind in (ColumnType.FLOAT, ColumnType.DECIMAL):
        number = obj.number(key)
        if number is None or not math.isfinite(number):
            raise obj.fail(key, "a finite number")
        return number
    if kind is ColumnType.BINARY:
        raise obj.fail(key, "null (binary columns have no min or max)")
    if not isinstance(value, int) or isinstance(value, bool):
        raise obj.fail(key, "an integer")
    return value


def _registers(obj: _Object) -> bytes:
    registers = obj.blob("distinct")
    if len(registers) != HLL_REGISTERS or max(registers) > HLL_MAX_RANK:
        raise ProfileError(f"{obj.where}.distinct: expected {HLL_REGISTERS} registers of at most {HLL_MAX_RANK}")
    return registers


def _frequent(obj: _Object) -> FrequentItems | None:
    child = obj.child("frequent", frozenset({"capacity", "error", "items"}))
    if child is None:
        return None
    capacity, error, items = child.count("capacity"), child.count("error"), child.data["items"]
    if not isinstance(items, list):
        raise child.fail("items", "a list")
    if capacity < 1 or len(items) > capacity:
        raise ProfileError(f"{child.where}: {len(items)} items do not fit capacity {capacity}")
    pairs = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise child.fail("items", "[value, count] pairs")
        if not isinstance(item[1], int) or isinstance(item[1], bool) or item[1] < 1:
            raise child.fail("items", "positive counts")
        pairs.append((item[0], item[1]))
    frequent = FrequentItems.of_pairs(capacity, error, pairs)
    if len({value for value, _ in frequent.items}) != len(pairs):
        raise ProfileError(f"{child.where}.items: duplicate values")
    return frequent


def _lengths(obj: _Object) -> Lengths | None:
    child = obj.child("lengths", frozenset({"min", "max", "total"}))
    if child is None:
        return None
    return Lengths(child.count("min"), child.count("max"), child.count("total"))


def _check_parts(profile: ColumnProfile, kind: ColumnType, where: str) -> None:
    """Each type has exactly its summaries (the table in ``profile``): no more, no fewer."""
    expected = {
        "quantiles": kind in QUANTILED,
        "frequent": kind in FREQUENT,
        "lengths": kind in VARIABLE and profile.count > profile.nulls,
        "mean": kind in NUMERIC and profile.finite > 0,
        "variance": kind in NUMERIC and profile.finite > 0,
        "min": kind in NUMERIC | {ColumnType.STRING} and profile.finite > 0,
        "max": kind in NUMERIC | {ColumnType.STRING} and profile.finite > 0,
    }
    found = {
        "quantiles": profile.quantiles,
        "frequent": profile.frequent,
        "lengths": profile.lengths,
        "mean": profile.mean,
        "variance": profile.variance,
        "min": profile.minimum,
        "max": profile.maximum,
    }
    for key, present in expected.items():
        if present != (found[key] is not None):
            state = "missing" if present else "not expected"
            raise ProfileError(f"{where}.{key}: {state} for a {profile.type} column with these counts")
    low, high = profile.minimum, profile.maximum
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise ProfileError(f"{where}: min is above max")
    if profile.variance is not None and profile.variance < 0:
        raise ProfileError(f"{where}.variance: negative")


def _check_sketch(profile: ColumnProfile, where: str) -> None:
    """The KLL sketch must decode and describe exactly the finite values the counts say."""
    if profile.quantiles is None:
        return
    try:
        sketch = sketches.kll_load(profile.quantiles)
    except ValueError as exc:
        raise ProfileError(f"{where}.quantiles: {exc}") from None
    if int(sketch.n) != profile.finite:
        raise ProfileError(f"{where}.quantiles: the sketch holds {sketch.n} values, the counts say {profile.finite}")
