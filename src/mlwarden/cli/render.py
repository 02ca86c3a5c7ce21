"""Turning results into terminal text or JSON, safely.

Anything that came from a user (names, reasons, resource ids) may hold CR/LF, ANSI escapes, bidi
overrides or megabytes of text. It is stored faithfully, but shown escaped and bounded, so a log line can
neither forge another line nor repaint the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

DEFAULT_LIMIT = 200


def safe(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """Printable, single-line, bounded text for any value (None shows as '-')."""
    if value is None:
        return "-"
    text = str(value)
    shown = text[:limit]
    escaped = "".join(_escape_char(ch) for ch in shown)
    if len(text) > limit:
        escaped += f"…[+{len(text) - limit} chars]"
    return escaped


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Zl", "Zp"):
        return ch
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def jsonable(value: Any) -> Any:
    """Plain JSON data for dataclasses, enums, bytes (hex), paths and datetimes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [jsonable(v) for v in value]
    return value


class Output:
    """Where a command writes: rich text for people, or exactly one JSON document with --json."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, soft_wrap=True, markup=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

    def emit(self, document: Any) -> None:
        """The one JSON document of a --json command."""
        sys.stdout.write(json.dumps(jsonable(document), indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def line(self, *parts: str | Text) -> None:
        if not self.json_mode:
            self.console.print(*parts)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
        if self.json_mode:
            return
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(safe(cell)) for cell in row))
        self.console.print(table)

    def error(self, message: str, hint: str) -> None:
        self.err.print(Text("error: " + safe(message, 1000), style="bold red"))
        if hint:
            self.err.print(Text("hint: " + safe(hint, 1000)))
