"""The gate's extension points and the one result type every step reports.

* ``Check`` (entry point ``mlwarden.checks``): a row-level rule, as a polars expression that is true on
  the rows that fail it. The built-in checks of a contract (``not_null``, ``min``, ``regex``...) are
  registered the same way a third-party plugin is.
* ``GateStep`` (entry point ``mlwarden.detectors``): anything that looks at the batch beside its
  reference (drift, and the poisoning detectors) and reports findings.

Every step reports ``Finding``s; the gate's policy turns them into one verdict. A step that raises is
a finding too, with outcome ``error``: the policy fails closed on it (DESIGN invariant 4).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from mlwarden.quality.evidence import Evidence

MAX_SAMPLE_ROWS = 5
MAX_MESSAGE = 1_000


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the step could not check: fail closed
    SKIPPED = "skipped"  # nothing to check (too few rows, no reference yet...)


class Severity(StrEnum):
    """What a failed finding does to the verdict, from mildest to strongest."""

    INFO = "info"
    WARN = "warn"
    QUARANTINE = "quarantine"
    REJECT = "reject"


SEVERITY_ORDER = list(Severity)


@dataclass(frozen=True)
class Finding:
    step: str  # contract, check, drift, label, or a detector's name
    name: str  # what was checked: "age.min", "drift.age", "rows.min" ...
    outcome: Outcome
    message: str
    column: str | None = None
    failed_rows: int = 0
    sample: tuple[dict[str, Any], ...] = ()  # a few failing rows: row number and the value(s)
    scores: dict[str, float] = field(default_factory=dict)
    severity: Severity | None = None  # the contract's own choice for this check, if it made one

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step": self.step,
            "name": self.name,
            "outcome": self.outcome.value,
            "message": self.message[:MAX_MESSAGE],
        }
        if self.column is not None:
            data["column"] = self.column
        if self.failed_rows:
            data["failed_rows"] = self.failed_rows
        if self.sample:
            data["sample"] = list(self.sample)
        if self.scores:
            data["scores"] = self.scores
        if self.severity is not None:
            data["severity"] = self.severity.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            step=str(data["step"]),
            name=str(data["name"]),
            outcome=Outcome(data["outcome"]),
            message=str(data["message"]),
            column=data.get("column"),
            failed_rows=int(data.get("failed_rows", 0)),
            sample=tuple(data.get("sample", ())),
            scores={str(k): float(v) for k, v in data.get("scores", {}).items()},
            severity=Severity(data["severity"]) if data.get("severity") else None,
        )


class Check(ABC):
    """A row-level rule. Plugins subclass this and register under the entry point ``mlwarden.checks``.

    ``column`` is the column the contract applies it to (None for a rule over whole rows) and
    ``params`` the contract's parameters for it; raise ``ValueError`` for parameters it cannot use.
    """

    def __init__(self, column: str | None, params: Mapping[str, Any]) -> None:
        self.column = column
        self.params = dict(params)

    @property
    def name(self) -> str:
        kind = type(self).__name__
        return f"{self.column}.{kind}" if self.column else kind

    @abstractmethod
    def failing(self) -> pl.Expr:
        """True on the rows that fail (a null result counts as passing)."""

    def reads(self) -> list[str] | None:
        """The columns ``failing()`` reads (None: any); only these are handed to polars."""
        return [self.column] if self.column else None

    def count_failing(self, batch: pa.Table) -> int | None:
        """The failing rows of ``batch`` counted straight from Arrow, when that is cheaper (None: use
        ``failing()``)."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """One line a person reads in a report: what is required."""


class GateStep(ABC):
    """A step of the ingestion gate that judges the batch as a whole, against its reference."""

    step: ClassVar[str]

    @abstractmethod
    def run(self, evidence: Evidence) -> list[Finding]:
        """The findings; raise if the step cannot judge (the gate records an error finding)."""
