"""Loading format scanners from the ``mlwarden.scanners`` entry points, and choosing by content."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from mlwarden.scan.interface import FormatScanner, ScannerError

GROUP = "mlwarden.scanners"


@cache
def scanners() -> tuple[FormatScanner, ...]:
    """Every registered scanner (built-ins included), lowest ``priority`` first."""
    found: list[FormatScanner] = []
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as error:  # a broken plugin is an error the user must see, not a silent gap
            raise ScannerError(f"cannot load scanner {ep.name!r} ({ep.value}): {error}") from error
        scanner = obj() if isinstance(obj, type) else obj
        if not isinstance(scanner, FormatScanner):
            raise ScannerError(f"scanner {ep.name!r} ({ep.value}) does not implement FormatScanner")
        found.append(scanner)
    if not found:
        raise ScannerError(
            f"no scanners registered under {GROUP!r}",
            hint="reinstall mlwarden: pip install -e . (or pip install mlwarden)",
        )
    return tuple(sorted(found, key=lambda s: (s.priority, s.name)))


def candidates(head: bytes, size: int | None) -> list[FormatScanner]:
    """The scanners whose sniff accepts ``head``, in the order to try them."""
    return [s for s in scanners() if s.sniff(head, size)]
