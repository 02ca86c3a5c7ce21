"""What a scan reports: verdicts, findings, per-file results and the whole report (frozen, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """The one word a scanned file gets. Only ``clean`` passes a gate; see docs/scanner.md."""

    CLEAN = "clean"
    UNSAFE = "unsafe"
    MALICIOUS = "malicious"
    UNVERIFIABLE = "unverifiable"
    NOT_A_MODEL = "not-a-model"


class Severity(StrEnum):
    """How much one finding weighs. ``info`` never changes a verdict."""

    INFO = "info"
    UNVERIFIABLE = "unverifiable"
    UNSAFE = "unsafe"
    MALICIOUS = "malicious"


_RANK = {Severity.INFO: 0, Severity.UNVERIFIABLE: 1, Severity.UNSAFE: 2, Severity.MALICIOUS: 3}
_VERDICT_RANK = {
    Verdict.CLEAN: 0,
    Verdict.NOT_A_MODEL: 1,
    Verdict.UNVERIFIABLE: 2,
    Verdict.UNSAFE: 3,
    Verdict.MALICIOUS: 4,
}


def severity_rank(severity: Severity) -> int:
    return _RANK[severity]


def verdict_rank(verdict: Verdict) -> int:
    """Order for 'the worst of': clean < not-a-model < unverifiable < unsafe < malicious."""
    return _VERDICT_RANK[verdict]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the scanner saw.

    ``code`` is a stable identifier (docs/scanner.md lists them), ``location`` says where: a member path
    inside a container and/or a byte offset in a pickle stream, e.g. ``archive/data.pkl@131``. ``globals``
    names the imported callables involved (``module.qualname``) and ``chain`` the call they take part in,
    rendered from the symbolic unpickler (``os.system('id')``), bounded in length.
    """

    code: str
    severity: Severity
    message: str
    location: str = ""
    globals: tuple[str, ...] = ()
    chain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.location,
            "globals": list(self.globals),
            "chain": self.chain,
        }


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """The result for one file: its verdict, the detected format(s), every finding and every global."""

    path: str
    verdict: Verdict
    format: str
    size: int
    findings: tuple[Finding, ...] = ()
    globals: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.verdict is Verdict.CLEAN

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "format": self.format,
            "size": self.size,
            "globals": list(self.globals),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Every file scanned. ``skipped`` lists files found while walking a folder that are not models."""

    files: tuple[FileVerdict, ...]
    skipped: tuple[str, ...] = ()
    allowlist_digest: str = ""
    elapsed_seconds: float = field(default=0.0, compare=False)

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of any file; an empty scan is not a pass (fail closed)."""
        if not self.files:
            return Verdict.NOT_A_MODEL
        return max((f.verdict for f in self.files), key=verdict_rank)

    @property
    def clean(self) -> bool:
        return bool(self.files) and all(f.clean for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        counts = {v.value: 0 for v in Verdict}
        for f in self.files:
            counts[f.verdict.value] += 1
        return {
            "verdict": self.verdict.value,
            "clean": self.clean,
            "counts": counts,
            "allowlist_digest": self.allowlist_digest,
            "files": [f.to_dict() for f in self.files],
            "skipped": list(self.skipped),
        }
