"""The scan entry points: a path (file or folder) or bytes in, a report out. Pure: no workspace, no I/O
besides reading the files named, nothing printed; progress goes to an optional observer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mlwarden.scan.context import Collector, ScanContext
from mlwarden.scan.model import FileVerdict, ScanReport, Severity, Verdict
from mlwarden.scan.policy import ScanPolicy
from mlwarden.scan.source import Budget, BytesStream, FileStream, LimitExceeded, Stream

Observer = Callable[[FileVerdict], None]
_BUFFER = 1 << 16


def scan_path(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    policy: ScanPolicy | None = None,
    observer: Observer | None = None,
) -> ScanReport:
    """Scan files and folders (recursively). Files inside folders that are not models are only listed
    in ``ScanReport.skipped``; a file named directly is always judged, not-a-model included."""
    policy = policy or ScanPolicy()
    started = time.perf_counter()
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    files: list[FileVerdict] = []
    skipped: list[str] = []
    for top in paths:
        top_path = Path(top)
        if top_path.is_dir():
            for found in _walk(top_path):
                verdict = scan_file(found, policy=policy)
                if verdict.verdict is Verdict.NOT_A_MODEL:
                    skipped.append(verdict.path)
                    continue
                files.append(verdict)
                if observer:
                    observer(verdict)
        else:
            verdict = scan_file(top_path, policy=policy)
            files.append(verdict)
            if observer:
                observer(verdict)
    elapsed = time.perf_counter() - started
    return ScanReport(tuple(files), tuple(skipped), policy.allow.digest(), elapsed)


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            candidate = Path(root) / name
            if candidate.is_file():
                yield candidate


def scan_file(path: str | os.PathLike[str], *, policy: ScanPolicy | None = None) -> FileVerdict:
    """Scan one file; the file is read as a stream, never loaded whole and never unpickled."""
    policy = policy or ScanPolicy()
    with open(path, "rb", buffering=_BUFFER) as f:
        stream = FileStream(f)
        return _scan_stream(stream, str(path), policy)


def scan_bytes(data: bytes, *, name: str = "<bytes>", policy: ScanPolicy | None = None) -> FileVerdict:
    """Scan a file's content held in memory."""
    return _scan_stream(BytesStream(data), name, policy or ScanPolicy())


def _scan_stream(stream: Stream, name: str, policy: ScanPolicy) -> FileVerdict:
    collector = Collector()
    ctx = ScanContext(policy, collector, Budget(policy.limits.max_total_bytes))
    size = stream.size or 0
    try:
        ctx.scan(stream)
    except LimitExceeded as error:
        ctx.add("limit-exceeded", Severity.UNVERIFIABLE, str(error))
    except (EOFError, OSError) as error:
        ctx.add("truncated", Severity.UNVERIFIABLE, f"cannot read the whole file: {error}")
    except Exception as error:  # noqa: BLE001 - any crash on hostile input fails closed (DESIGN invariant 4)
        ctx.add("scanner-error", Severity.UNVERIFIABLE, f"could not check: {type(error).__name__}: {error}")
    return FileVerdict(
        path=name,
        verdict=collector.verdict(),
        format=collector.formats[0] if collector.formats else "unknown",
        size=size,
        findings=tuple(collector.findings),
        globals=tuple(sorted(collector.globals)),
    )
