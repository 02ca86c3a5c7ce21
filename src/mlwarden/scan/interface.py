"""The extension point for file formats: a scanner that recognises its format by content and scans it.

Built-in scanners register exactly as a plugin does, under the entry-point group ``mlwarden.scanners``
(see pyproject.toml); :mod:`mlwarden.scan.registry` loads them all and tries them in ``priority`` order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mlwarden.errors import MlwardenError

if TYPE_CHECKING:
    from mlwarden.scan.context import ScanContext
    from mlwarden.scan.source import Stream

HEAD_BYTES = 512


class ScannerError(MlwardenError):
    """A format scanner could not be loaded or is not a FormatScanner."""

    default_hint = "check the plugin registered under the entry-point group mlwarden.scanners"


@runtime_checkable
class FormatScanner(Protocol):
    """One file format. ``sniff`` sees the first bytes only; ``scan`` reads the stream and reports.

    ``scan`` returns False when the content turns out not to be this format after all (nothing reported);
    then the next candidate gets a fresh stream at the same position. It reports through ``ctx``:
    ``ctx.recognize(format)`` once the content is a model of this format, ``ctx.add(...)`` for findings,
    ``ctx.scan_member(...)`` for what a container holds. It must never import or run what it reads.
    """

    name: str
    priority: int

    def sniff(self, head: bytes, size: int | None) -> bool: ...

    def scan(self, stream: Stream, ctx: ScanContext) -> bool: ...
