"""Data contracts: what every batch of a dataset must satisfy, declared in YAML or TOML.

A contract names each column's type and nullability and any of: a range, an allowed set, a regular
expression, string length bounds, uniqueness; plus row-count bounds for a batch, the label's classes
and custom checks (plugins, entry point ``mlwarden.checks``). ``infer_contract`` writes one from a
profile, so a team starts from what its accepted data looks like and tightens it.

The file format (docs/validation.md)::

    version: 1
    rows: {min: 100, max: 10000000}
    label: {column: y, classes: [0, 1]}
    columns:
      age: {type: int, nullable: false, min: 0, max: 120}
      country: {type: string, allowed: [DE, FR, US]}
      email: {type: string, regex: '^[^@]+@[^@]+$', max_length: 254}
      id: {type: string, unique: true}
    checks:
      - {check: my_plugin, column: age, severity: warn, params: {limit: 3}}
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.data.schema import ColumnType, Schema
from mlwarden.errors import UsageError

CONTRACT_VERSION = 1
MAX_ALLOWED = 10_000
MAX_REGEX = 1_000
Scalar = bool | int | float | str
_COLUMN_KEYS = {"type", "nullable", "min", "max", "allowed", "regex", "min_length", "max_length", "unique", "finite"}
_NUMERIC = {ColumnType.INT, ColumnType.FLOAT, ColumnType.DECIMAL, ColumnType.DATE, ColumnType.TIMESTAMP}
_NUMERIC |= {ColumnType.TIMESTAMP_UTC}


class ContractError(UsageError):
    """A contract or policy file that cannot be used as written."""


@dataclass(frozen=True)
class ColumnRule:
    name: str
    type: str | None = None  # a schema type name ("int", "decimal(10,2)"); None: whatever the schema says
    nullable: bool = True
    minimum: Scalar | None = None
    maximum: Scalar | None = None
    allowed: tuple[Scalar, ...] | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    unique: bool = False
    finite: bool = False  # floats: NaN and +-inf fail

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type} if self.type else {}
        data["nullable"] = self.nullable
        pairs = (
            ("min", self.minimum),
            ("max", self.maximum),
            ("allowed", list(self.allowed) if self.allowed is not None else None),
            ("regex", self.regex),
            ("min_length", self.min_length),
            ("max_length", self.max_length),
        )
        data.update({k: v for k, v in pairs if v is not None})
        if self.unique:
            data["unique"] = True
        if self.finite:
            data["finite"] = True
        return data


@dataclass(frozen=True)
class CustomCheck:
    check: str  # the entry point's name
    column: str | None = None
    severity: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"check": self.check}
        if self.column:
            data["column"] = self.column
        if self.severity:
            data["severity"] = self.severity
        if self.params:
            data["params"] = self.params
        return data


@dataclass(frozen=True)
class Contract:
    columns: tuple[ColumnRule, ...] = ()
    min_rows: int | None = None
    max_rows: int | None = None
    label_column: str | None = None
    label_classes: tuple[Scalar, ...] | None = None
    checks: tuple[CustomCheck, ...] = ()

    def rule(self, name: str) -> ColumnRule | None:
        return next((r for r in self.columns if r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": CONTRACT_VERSION}
        rows = {k: v for k, v in (("min", self.min_rows), ("max", self.max_rows)) if v is not None}
        if rows:
            data["rows"] = rows
        if self.label_column:
            label: dict[str, Any] = {"column": self.label_column}
            if self.label_classes is not None:
                label["classes"] = list(self.label_classes)
            data["label"] = label
        data["columns"] = {r.name: r.to_json() for r in self.columns}
        if self.checks:
            data["checks"] = [c.to_json() for c in self.checks]
        return data

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_json(), sort_keys=False, allow_unicode=True)


# -- reading ------------------------------------------------------------------------------------------------


def load_document(path: Path) -> dict[str, Any]:
    """A YAML or TOML file (told by its suffix; YAML otherwise) as a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"cannot read {path}: {exc}") from None
    return parse_document(text, toml=path.suffix.lower() == ".toml", name=path.name)


def parse_document(text: str, *, toml: bool = False, name: str = "the document") -> dict[str, Any]:
    import yaml

    try:
        data = tomllib.loads(text) if toml else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ContractError(f"{name} is not valid {'TOML' if toml else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"{name} must be a mapping at the top level")
    return data


def contract_from_json(data: dict[str, Any]) -> Contract:
    """A contract from its document, every field checked (unknown keys are errors, not ignored)."""
    _known(data, {"version", "rows", "label", "columns", "checks"}, "the contract")
    if data.get("version", CONTRACT_VERSION) != CONTRACT_VERSION:
        raise ContractError(f"contract version {data.get('version')!r} is not supported (this is {CONTRACT_VERSION})")
    rows = _mapping(data.get("rows", {}), "rows")
    _known(rows, {"min", "max"}, "rows")
    label = _mapping(data.get("label", {}), "label")
    _known(label, {"column", "classes"}, "label")
    columns = _mapping(data.get("columns", {}), "columns")
    checks = data.get("checks", [])
    if not isinstance(checks, list):
        raise ContractError("checks must be a list")
    classes = label.get("classes")
    return Contract(
        columns=tuple(_rule(str(name), _mapping(spec or {}, f"column {name!r}")) for name, spec in columns.items()),
        min_rows=_count(rows.get("min"), "rows.min"),
        max_rows=_count(rows.get("max"), "rows.max"),
        label_column=_text(label.get("column"), "label.column"),
        label_classes=_scalars(classes, "label.classes") if classes is not None else None,
        checks=tuple(_custom(_mapping(c, "a check")) for c in checks),
    )


def _rule(name: str, spec: dict[str, Any]) -> ColumnRule:
    _known(spec, _COLUMN_KEYS, f"column {name!r}")
    regex = _text(spec.get("regex"), f"{name}.regex")
    if regex is not None:
        _check_regex(name, regex)
    allowed = spec.get("allowed")
    rule = ColumnRule(
        name=name,
        type=_type_name(spec.get("type"), name),
        nullable=_flag(spec.get("nullable", True), f"{name}.nullable"),
        minimum=_scalar(spec.get("min"), f"{name}.min"),
        maximum=_scalar(spec.get("max"), f"{name}.max"),
        allowed=_scalars(allowed, f"{name}.allowed") if allowed is not None else None,
        regex=regex,
        min_length=_count(spec.get("min_length"), f"{name}.min_length"),
        max_length=_count(spec.get("max_length"), f"{name}.max_length"),
        unique=_flag(spec.get("unique", False), f"{name}.unique"),
        finite=_flag(spec.get("finite", False), f"{name}.finite"),
    )
    if isinstance(rule.minimum, float | int) and isinstance(rule.maximum, float | int) and rule.minimum > rule.maximum:
        raise ContractError(f"column {name!r}: min {rule.minimum} is above max {rule.maximum}")
    return rule


def _custom(spec: dict[str, Any]) -> CustomCheck:
    _known(spec, {"check", "column", "severity", "params"}, "a check")
    name = _text(spec.get("check"), "check")
    if not name:
        raise ContractError("every entry of checks needs a `check:` name (a plugin of mlwarden.checks)")
    return CustomCheck(
        name,
        _text(spec.get("column"), "check.column"),
        _text(spec.get("severity"), "check.severity"),
        _mapping(spec.get("params", {}), "check.params"),
    )


def _check_regex(name: str, pattern: str) -> None:
    if len(pattern) > MAX_REGEX:
        raise ContractError(f"column {name!r}: the regex is longer than {MAX_REGEX} characters")
    # Checks run it with polars (Rust's regex crate: linear time, no backtracking, so no ReDoS); Python's
    # re accepts a close superset of its syntax and gives the early, readable error.
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ContractError(f"column {name!r}: invalid regex: {exc}") from None


def _known(data: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ContractError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}", hint="known: " + ", ".join(sorted(keys))
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where} must be a mapping")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"{where} must be a string")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ContractError(f"{where} must be true or false")
    return value


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ContractError(f"{where} must be a whole number >= 0")
    return value


def _scalar(value: Any, where: str) -> Scalar | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if hasattr(value, "isoformat"):  # YAML dates and timestamps: compared as ISO text
        return str(value.isoformat())
    raise ContractError(f"{where} must be a number, a string or a date (finite)")


def _scalars(value: Any, where: str) -> tuple[Scalar, ...]:
    if not isinstance(value, list) or len(value) > MAX_ALLOWED:
        raise ContractError(f"{where} must be a list of at most {MAX_ALLOWED} values")
    items = tuple(_scalar(v, where) for v in value)
    if any(v is None for v in items):
        raise ContractError(f"{where} may not contain null (use nullable: true)")
    return tuple(v for v in items if v is not None)


def _type_name(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"column {name!r}: type must be a string")
    try:
        Schema.from_json([{"name": name, "type": value}])
    except ValueError:
        kinds = ", ".join(t.value for t in ColumnType)
        raise ContractError(f"column {name!r}: unknown type {value!r}", hint=f"types: {kinds}") from None
    return value


def is_numeric(kind: ColumnType) -> bool:
    return kind in _NUMERIC


# -- inference ---------------------------------------------------------------------------------------------

MAX_INFERRED_SET = 20


def infer_contract(schema: Schema, profile: Any, label_column: str | None = None) -> Contract:
    """The contract the profiled data already satisfies: types, nullability, observed ranges, and an
    allowed set for a column with at most ``MAX_INFERRED_SET`` values (exact: every value was counted).

    A starting point to review and tighten, not a specification: ranges are what was seen, so a new
    batch slightly outside them fails until the contract is widened on purpose.
    """
    rules = []
    for column in schema.columns:
        stats = profile.column(column.name)
        rule = _inferred_rule(column.name, column.type, column.type_name, stats)
        if column.name == label_column:  # its values are the label classes below: one check, not two
            rule = ColumnRule(rule.name, rule.type, rule.nullable)
        rules.append(rule)
    classes = None
    if label_column is not None:
        classes = _exact_values(profile.column(label_column), schema.column(label_column).type)
    return Contract(columns=tuple(rules), label_column=label_column, label_classes=classes)


def _inferred_rule(name: str, kind: ColumnType, type_name: str, stats: Any) -> ColumnRule:
    present = stats.count - stats.nulls
    if kind in (ColumnType.INT, ColumnType.STRING) and present and stats.distinct_estimate() >= 0.99 * present:
        return ColumnRule(name, type_name, stats.nulls > 0)  # an identifier: its next values are new ones
    small = kind in (ColumnType.STRING, ColumnType.BOOL, ColumnType.INT)
    allowed = _exact_values(stats, kind) if small else None
    ranged = kind in (ColumnType.INT, ColumnType.FLOAT, ColumnType.DECIMAL) and allowed is None
    return ColumnRule(
        name=name,
        type=type_name,
        nullable=stats.nulls > 0,
        minimum=_json_scalar(stats.minimum) if ranged else None,
        maximum=_json_scalar(stats.maximum) if ranged else None,
        allowed=allowed,
        finite=kind is ColumnType.FLOAT and stats.nan == 0 and stats.inf == 0 and present > 0,
    )


def _exact_values(stats: Any, kind: ColumnType) -> tuple[Scalar, ...] | None:
    """Every distinct value, when the profile counted them all exactly and there are few."""
    top = stats.top(MAX_INFERRED_SET + 1)
    counted = sum(low for _value, low, _high in top)
    if not top or len(top) > MAX_INFERRED_SET or counted != stats.count - stats.nulls:
        return None
    values = [value for value, _low, _high in top]
    if kind is ColumnType.BOOL:
        return tuple(sorted(v == "true" for v in values))
    if kind is ColumnType.INT:
        return tuple(sorted(int(v) for v in values))
    return tuple(sorted(values))


def _json_scalar(value: Any) -> Scalar | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
