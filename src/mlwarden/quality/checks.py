"""Running a contract's checks over a batch, one record batch at a time, in one polars pass each.

``compile_checks`` turns a contract into bound checks (built-ins and plugins of ``mlwarden.checks``);
``CheckRunner`` evaluates all of them per record batch as one polars ``select`` of failure counts, keeps
a few failing rows per check, and carries uniqueness across record batches. A check that raises (a
plugin's bug, a parameter that does not fit the column's type) becomes an ``error`` finding: the gate
fails closed on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlwarden.data.schema import Schema
from mlwarden.quality.contract import ColumnRule, Contract, ContractError
from mlwarden.quality.interface import MAX_SAMPLE_ROWS, Check, Finding, Outcome, Severity

if TYPE_CHECKING:
    import polars as pl

GROUP = "mlwarden.checks"
MAX_SHOWN_VALUE = 200
FLUSH_ROWS = 1 << 20  # rows per evaluation: fewer, larger selects parallelise better; memory stays bounded


@cache
def registry() -> dict[str, type[Check]]:
    """Every check by name: the built-ins and the installed plugins (a plugin may not shadow a built-in)."""
    from mlwarden.quality.builtin_checks import BUILTIN

    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN:
            continue
        loaded = ep.load()
        if isinstance(loaded, type) and issubclass(loaded, Check):
            found[ep.name] = loaded
    return found


@dataclass(frozen=True)
class BoundCheck:
    name: str  # "age.min", "rows.label", "my_plugin" ...
    check: Check | None  # None: the check could not even be built (``error`` says why)
    severity: Severity | None = None
    error: str | None = None

    @property
    def column(self) -> str | None:
        return self.check.column if self.check else None


def compile_checks(contract: Contract, schema: Schema) -> tuple[list[BoundCheck], list[Finding]]:
    """The contract's row checks, and the findings of comparing it with the dataset's schema."""
    findings = _schema_findings(contract, schema)
    types = {c.name: c.type_name for c in schema.columns}
    bound: list[BoundCheck] = []
    for rule in contract.columns:
        if rule.name in types:
            bound += _rule_checks(rule, types[rule.name])
    if contract.label_column and contract.label_classes is not None and contract.label_column in types:
        params = {"values": list(contract.label_classes), "type": types[contract.label_column]}
        bound.append(_bind(f"{contract.label_column}.label_classes", "allowed", contract.label_column, params))
    for custom in contract.checks:
        params = dict(custom.params) | ({"type": types[custom.column]} if custom.column in types else {})
        name = f"{custom.column}.{custom.check}" if custom.column else custom.check
        bound.append(_bind(name, custom.check, custom.column, params, custom.severity))
    return bound, findings


def _rule_checks(rule: ColumnRule, type_name: str) -> list[BoundCheck]:
    typed = {"type": type_name}
    wanted: list[tuple[str, str, dict[str, Any]]] = []
    if not rule.nullable:
        wanted.append(("not_null", "not_null", {}))
    if rule.minimum is not None:
        wanted.append(("min", "min", {"value": rule.minimum}))
    if rule.maximum is not None:
        wanted.append(("max", "max", {"value": rule.maximum}))
    if rule.allowed is not None:
        wanted.append(("allowed", "allowed", {"values": list(rule.allowed)}))
    if rule.regex is not None:
        wanted.append(("regex", "regex", {"pattern": rule.regex}))
    if rule.min_length is not None or rule.max_length is not None:
        wanted.append(("length", "length", {"min": rule.min_length, "max": rule.max_length}))
    if rule.finite:
        wanted.append(("finite", "finite", {}))
    if rule.unique:
        wanted.append(("unique", "unique", {}))
    return [_bind(f"{rule.name}.{label}", kind, rule.name, typed | params) for label, kind, params in wanted]


def _bind(name: str, kind: str, column: str | None, params: dict[str, Any], severity: str | None = None) -> BoundCheck:
    level = _severity(severity, name)
    cls = registry().get(kind)
    if cls is None:
        return BoundCheck(name, None, level, f"no check named {kind!r} is installed (entry point {GROUP})")
    try:
        check = cls(column, params)
        check.failing()  # build the expression once: bad parameters show here, before any data
    except Exception as exc:  # a plugin may raise anything; fail closed with the reason
        return BoundCheck(name, None, level, f"{type(exc).__name__}: {exc}")
    return BoundCheck(name, check, level)


def _severity(value: str | None, name: str) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity(value)
    except ValueError:
        raise ContractError(
            f"check {name}: unknown severity {value!r}", hint="info, warn, quarantine or reject"
        ) from None


def _schema_findings(contract: Contract, schema: Schema) -> list[Finding]:
    types = {c.name: c.type_name for c in schema.columns}
    findings = []
    for rule in contract.columns:
        if rule.name not in types:
            findings.append(_contract(f"{rule.name}.present", f"column {rule.name!r} is missing", rule.name))
        elif rule.type and rule.type != types[rule.name]:
            message = f"column {rule.name!r} is {types[rule.name]}, the contract says {rule.type}"
            findings.append(_contract(f"{rule.name}.type", message, rule.name))
    if contract.label_column and contract.label_column not in types:
        findings.append(_contract("label.present", f"label column {contract.label_column!r} is missing"))
    return findings


def _contract(name: str, message: str, column: str | None = None) -> Finding:
    return Finding("contract", name, Outcome.FAILED, message, column=column)


class CheckRunner:
    """Accumulates the checks' failures over the record batches of one ingestion."""

    def __init__(self, checks: Iterable[BoundCheck], contract: Contract) -> None:
        self._checks = list(checks)
        self._contract = contract
        self._failed = [0] * len(self._checks)
        self._samples: list[list[dict[str, Any]]] = [[] for _ in self._checks]
        self._errors: dict[int, str] = {i: c.error for i, c in enumerate(self._checks) if c.error}
        self._seen: dict[int, list[pl.Series]] = {}  # across-batch uniqueness: the column's hashes so far
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._evaluated = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Take a record batch; they are evaluated ``FLUSH_ROWS`` at a time (one polars select each)."""
        if not any(c.check is not None and i not in self._errors for i, c in enumerate(self._checks)):
            self._evaluated += batch.num_rows  # nothing to evaluate: polars stays unloaded
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= FLUSH_ROWS:
            self._flush()

    @property
    def rows(self) -> int:
        """Rows taken so far."""
        return self._evaluated + self._pending_rows

    def _flush(self) -> None:
        if not self._pending:
            return
        import polars as pl

        table = pa.Table.from_batches(self._pending)
        self._pending, self._pending_rows = [], 0
        live = [i for i, c in enumerate(self._checks) if c.check is not None and i not in self._errors]
        counts = self._arrow_counts(table, live)
        shown = [i for i, n in counts.items() if n and len(self._samples[i]) < MAX_SAMPLE_ROWS]
        frame = pl.DataFrame(self._columns_read(table, [i for i in live if i not in counts] + shown))
        counts |= self._counts(frame, [i for i in live if i not in counts])
        for i in live:
            if i in self._errors:
                continue
            if getattr(self._checks[i].check, "across_batches", False):
                counts[i] = self._carry_unique(i, frame)
            self._failed[i] += counts[i]
            if counts[i] and len(self._samples[i]) < MAX_SAMPLE_ROWS:
                self._sample(i, frame)
        self._evaluated += table.num_rows

    def _arrow_counts(self, batch: pa.Table, live: list[int]) -> dict[int, int]:
        counts = {}
        for i in live:
            try:
                counted = self._check(i).count_failing(batch)
            except Exception as exc:  # a plugin's shortcut that fails: fail closed, like its expression
                self._errors[i] = f"{type(exc).__name__}: {exc}"
                continue
            if counted is not None:
                counts[i] = counted
        return counts

    def _columns_read(self, batch: pa.Table, live: list[int]) -> pa.Table:
        """Only the columns these checks read (the ones counted from Arrow are here to show failing rows):
        converting a string column to polars copies every string."""
        wanted: set[str] = set()
        for i in live:
            reads = self._check(i).reads()
            if reads is None:
                return batch
            wanted.update(reads)
        names = [n for n in batch.schema.names if n in wanted]
        return batch.select(names)

    def _counts(self, frame: pl.DataFrame, live: list[int]) -> dict[int, int]:
        """All the checks' failure counts in one select; one at a time to isolate a check that raises."""
        exprs = {i: self._expr(i).sum().alias(f"c{i}") for i in live}
        try:
            row = frame.select(list(exprs.values())).row(0) if exprs else ()
            return {i: int(v or 0) for i, v in zip(exprs, row, strict=True)}
        except Exception:  # noqa: S110 - narrowed below, check by check
            pass
        counts = {}
        for i, expr in exprs.items():
            try:
                counts[i] = int(frame.select(expr).item() or 0)
            except Exception as exc:  # a check that cannot run on this data: fail closed
                self._errors[i] = f"{type(exc).__name__}: {exc}"
        return counts

    def _check(self, i: int) -> Check:
        check = self._checks[i].check
        if check is None:
            raise RuntimeError(f"check {self._checks[i].name} was not built")
        return check

    def _expr(self, i: int) -> pl.Expr:
        return self._check(i).failing().fill_null(False)

    def _carry_unique(self, i: int, frame: pl.DataFrame) -> int:
        """How many more rows now share a value with another row of the ingestion (64-bit hashes of the
        values seen so far are kept: 8 bytes a row; a collision needs ~2^32 distinct values)."""
        column = self._check(i).column or ""
        seen = self._seen.setdefault(i, [])
        seen.append(frame.get_column(column).drop_nulls().hash(seed=0))
        import polars as pl

        merged = pl.concat(seen)
        self._seen[i] = [merged]
        return int(merged.is_duplicated().sum()) - self._failed[i]

    def _sample(self, i: int, frame: pl.DataFrame) -> None:
        check = self._check(i)
        shown = [check.column] if check.column else frame.columns[:5]
        try:
            rows = (
                frame.with_row_index("row", offset=self._evaluated)
                .filter(self._expr(i))
                .select(["row", *shown])
                .head(MAX_SAMPLE_ROWS - len(self._samples[i]))
                .to_dicts()
            )
        except Exception:  # the count was taken; a sample is a courtesy
            return
        self._samples[i] += [{k: _shown(v) for k, v in row.items()} for row in rows]

    def findings(self) -> list[Finding]:
        self._flush()
        found = [self._finding(i, c) for i, c in enumerate(self._checks)]
        return found + self._row_count_findings()

    def _finding(self, i: int, bound: BoundCheck) -> Finding:
        column = bound.column
        if i in self._errors:
            message = f"could not check {bound.name}: {self._errors[i]}"
            return Finding("check", bound.name, Outcome.ERROR, message, column, severity=bound.severity)
        check = self._check(i)
        failed = self._failed[i]
        what = f"{column} {check.describe()}" if column else check.describe()
        if failed:
            share = failed / self.rows if self.rows else 1.0
            message = f"{failed:,} of {self.rows:,} rows fail: {what}"
            return Finding(
                "check", bound.name, Outcome.FAILED, message, column, failed, tuple(self._samples[i]),
                {"failed_share": share}, bound.severity,
            )  # fmt: skip
        return Finding("check", bound.name, Outcome.PASSED, f"all rows pass: {what}", column, severity=bound.severity)

    def _row_count_findings(self) -> list[Finding]:
        found = []
        low, high = self._contract.min_rows, self._contract.max_rows
        if low is not None:
            ok = self.rows >= low
            message = f"{self.rows:,} rows; the contract wants at least {low:,}"
            found.append(Finding("check", "rows.min", Outcome.PASSED if ok else Outcome.FAILED, message))
        if high is not None:
            ok = self.rows <= high
            message = f"{self.rows:,} rows; the contract allows at most {high:,}"
            found.append(Finding("check", "rows.max", Outcome.PASSED if ok else Outcome.FAILED, message))
        return found


def _shown(value: Any) -> Any:
    """A failing value as JSON can carry it, bounded (a row's value is user data of any size)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[:MAX_SHOWN_VALUE] + "…"
