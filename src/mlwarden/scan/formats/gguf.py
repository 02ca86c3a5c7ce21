"""GGUF (llama.cpp) files: the key/value metadata, above all the Jinja2 chat template.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md. Chat templates are rendered by
Jinja2; rendered outside a sandbox (llama-cpp-python before 0.2.72, CVE-2024-34359) a template that
walks ``__class__``/``__globals__`` runs code. Templates are checked by :mod:`.jinja`.
"""

from __future__ import annotations

import struct

from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.jinja import template_findings
from mlwarden.scan.model import Severity
from mlwarden.scan.source import LimitExceeded, Stream

MAGIC = b"GGUF"
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9
MAX_TEMPLATE = 1 << 20
MAX_KEYS = 1 << 20


class GgufScanner:
    name = "gguf"
    priority = 20

    def sniff(self, head: bytes, size: int | None) -> bool:
        return head.startswith(MAGIC) and len(head) >= 8 and struct.unpack("<I", head[4:8])[0] in (1, 2, 3)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        stream.read_exact(4)
        version = struct.unpack("<I", stream.read_exact(4))[0]
        wide = version >= 2  # version 1 used 32-bit counts and lengths
        count_fmt = "<Q" if wide else "<I"
        struct.unpack(count_fmt, stream.read_exact(8 if wide else 4))  # tensor count
        kv_count = struct.unpack(count_fmt, stream.read_exact(8 if wide else 4))[0]
        if kv_count > MAX_KEYS:
            raise LimitExceeded(f"{kv_count} metadata keys")
        ctx.recognize(self.name)
        try:
            self._metadata(_Reader(stream, wide), kv_count, ctx)
        except ValueError as error:
            ctx.add("corrupt-member", Severity.UNVERIFIABLE, f"GGUF metadata cannot be read: {error}")
        return True

    def _metadata(self, reader: _Reader, kv_count: int, ctx: ScanContext) -> None:
        for _ in range(kv_count):
            key = reader.string(4096).decode("utf-8", "replace")
            kind = reader.u32()
            if key.startswith("tokenizer.chat_template") and kind == STRING:
                raw = reader.string(MAX_TEMPLATE)
                for severity, message in template_findings(raw.decode("utf-8", "replace")):
                    ctx.add("gguf-template", severity, f"chat template {key!r}: {message}")
            else:
                reader.skip_value(kind)


class _Reader:
    def __init__(self, stream: Stream, wide: bool) -> None:
        self.stream, self.wide = stream, wide

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.stream.read_exact(4))[0]
        return value

    def length(self) -> int:
        value: int = struct.unpack("<Q" if self.wide else "<I", self.stream.read_exact(8 if self.wide else 4))[0]
        return value

    def string(self, limit: int) -> bytes:
        size = self.length()
        if size > limit:
            raise LimitExceeded(f"a GGUF string of {size} bytes")
        return self.stream.read_exact(size)

    def skip_value(self, kind: int, depth: int = 0) -> None:
        if kind in _SCALAR:
            self.stream.read_exact(_SCALAR[kind])
        elif kind == STRING:
            size = self.length()
            if self.stream.skip(size) != size:
                raise EOFError("GGUF string cut short")
        elif kind == ARRAY and depth < 4:
            item, count = self.u32(), self.length()
            if item in _SCALAR:
                size = _SCALAR[item] * count
                if self.stream.skip(size) != size:
                    raise EOFError("GGUF array cut short")
            else:
                for _ in range(count):
                    self.skip_value(item, depth + 1)
        else:
            raise ValueError(f"unknown GGUF value type {kind}")
