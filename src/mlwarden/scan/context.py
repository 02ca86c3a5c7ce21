"""What one file's scan accumulates, and how scanners hand nested content back to the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlwarden.scan.interface import HEAD_BYTES
from mlwarden.scan.model import Finding, Severity, Verdict, severity_rank
from mlwarden.scan.policy import Limits, ScanPolicy
from mlwarden.scan.source import Budget, LimitExceeded, Meter, Stream
from mlwarden.scan.zipreader import has_end_record


@dataclass
class Collector:
    """Shared by every context of one top-level file."""

    findings: list[Finding] = field(default_factory=list)
    globals: set[str] = field(default_factory=set)
    formats: list[str] = field(default_factory=list)
    recognized: bool = False

    def verdict(self) -> Verdict:
        worst = max((severity_rank(f.severity) for f in self.findings), default=0)
        if worst >= severity_rank(Severity.MALICIOUS):
            return Verdict.MALICIOUS
        if worst >= severity_rank(Severity.UNSAFE):
            return Verdict.UNSAFE
        if worst >= severity_rank(Severity.UNVERIFIABLE):
            return Verdict.UNVERIFIABLE
        return Verdict.CLEAN if self.recognized else Verdict.NOT_A_MODEL


class ScanContext:
    """Where a scanner is (member path, nesting depth) and where its findings go."""

    def __init__(self, policy: ScanPolicy, collector: Collector, budget: Budget, where: str = "", depth: int = 0):
        self.policy = policy
        self.limits: Limits = policy.limits
        self.collector = collector
        self.budget = budget
        self.where = where
        self.depth = depth

    def location(self, offset: int | None = None) -> str:
        return self.where if offset is None else f"{self.where}@{offset}"

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        offset: int | None = None,
        globals: tuple[str, ...] = (),
        chain: str | None = None,
    ) -> None:
        self.collector.findings.append(Finding(code, severity, message, self.location(offset), globals, chain))

    def recognize(self, fmt: str, *, prefer: bool = False) -> None:
        """The content is a model of format ``fmt`` (``prefer``: a more precise name for what came first)."""
        self.collector.recognized = True
        formats = self.collector.formats
        if fmt in formats:
            return
        if prefer and self.depth == 0:
            formats.insert(0, fmt)
        else:
            formats.append(fmt)

    def describe(self, fmt: str) -> None:
        """Name the format (a container) without claiming that it holds a model."""
        if fmt not in self.collector.formats:
            self.collector.formats.append(fmt)

    def child(self, name: str) -> ScanContext:
        """The context of something inside this one (an archive member, a nested pickle)."""
        if self.depth + 1 > self.limits.max_depth:
            raise LimitExceeded(f"nesting deeper than {self.limits.max_depth} levels")
        where = f"{self.where}/{name}" if self.where and name else (name or self.where)
        return ScanContext(self.policy, self.collector, self.budget, where, self.depth + 1)

    def meter(self) -> Meter:
        lim = self.limits
        return Meter(self.budget, ratio=lim.max_ratio, floor=lim.ratio_floor, cap=lim.max_member_bytes)

    def scan(self, stream: Stream) -> bool:
        """Detect the format of ``stream`` by content and scan it; False when no scanner knew it."""
        from mlwarden.scan.registry import candidates, scanners

        base = stream.fork()
        head = stream.peek(HEAD_BYTES)
        claimed = None
        for scanner in candidates(head, stream.remaining):
            if scanner.scan(stream.fork(), self):
                claimed = scanner.name
                break
        if claimed != "zip" and base.seekable and has_end_record(base):
            # Python's zipfile (np.load, Keras, ...) finds a ZIP by its end record: data before it is ignored.
            for scanner in scanners():
                if scanner.name == "zip" and scanner.scan(base.fork(), self):
                    self.add("polyglot", Severity.INFO, "a ZIP archive is embedded at the end of this content")
                    return True
        return claimed is not None

    def scan_member(self, name: str, stream: Stream) -> bool:
        """Scan a member of a container; a limit hit inside it makes that member unverifiable."""
        try:
            return self.child(name).scan(stream)
        except LimitExceeded as error:
            self.child_location_add(name, "limit-exceeded", Severity.UNVERIFIABLE, str(error))
            return False
        except EOFError as error:
            self.child_location_add(name, "truncated", Severity.UNVERIFIABLE, f"member cut short: {error}")
            return False

    def child_location_add(self, name: str, code: str, severity: Severity, message: str) -> None:
        where = f"{self.where}/{name}" if self.where else name
        self.collector.findings.append(Finding(code, severity, message, where))
