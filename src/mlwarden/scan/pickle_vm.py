"""A symbolic pickle VM that mirrors CPython's unpickler opcode by opcode, and never imports or calls.

It keeps the real stack, mark stack and memo (so STACK_GLOBAL arguments fed through the memo, memo
re-assignment and MEMOIZE are followed exactly as CPython follows them), treats FRAME as the C
unpickler does (a length check, not a boundary, so a lying FRAME cannot desync it) and replaces what
code would produce by symbolic values (pickle_values). Imports, calls, BUILD and container mutation are
judged in :mod:`mlwarden.scan.pickle_calls`. Semantics follow ``Modules/_pickle.c`` and
``Lib/pickle.py`` (https://docs.python.org/3/library/pickle.html, PEP 3154 for protocol 4 framing,
PEP 574 for protocol 5 buffers).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass

from mlwarden.scan.pickle_calls import CallsMixin, Nested, PickleError
from mlwarden.scan.pickle_values import BlobVal, OpaqueVal
from mlwarden.scan.policy import ScanPolicy
from mlwarden.scan.source import LimitExceeded, Stream

HIGHEST_PROTOCOL = 5


class _Stop(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


@dataclass(frozen=True)
class RunResult:
    """How one pickle (up to its STOP, or its first error) went."""

    value: object
    error: str | None
    error_offset: int
    significant: bool  # PROTO, an import or a call ran, or STOP was reached: this is a pickle
    start: int
    end: int


class Machine(CallsMixin):
    """Runs one pickle from ``stream``'s position to its STOP."""

    def __init__(self, stream: Stream, policy: ScanPolicy, nested: Nested | None = None) -> None:
        super().__init__(policy)
        self.stream = stream
        self.nested = nested
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.ops = 0
        self._table = _build_table(self)

    def run(self) -> RunResult:
        start = self.stream.tell()
        try:
            value = self._loop()
        except _Stop as stop:
            self.significant = True
            return RunResult(stop.value, None, -1, True, start, self.stream.tell())
        except LimitExceeded:
            raise
        except EOFError as error:
            return self._failed(start, f"truncated stream: {error}")
        except PickleError as error:
            return self._failed(start, str(error))
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, struct.error, RecursionError) as error:
            return self._failed(start, f"{type(error).__name__}: {error}")
        return RunResult(value, None, -1, self.significant, start, self.stream.tell())  # pragma: no cover

    def run_inline(self) -> str | None:
        """Run the next pickle of the same stream (joblib object arrays) and take over its findings."""
        inner = Machine(self.stream, self.policy, self.nested)
        result = inner.run()
        self.findings.extend(inner.findings)
        for ref, use in inner.uses.items():
            mine = self.uses.setdefault(ref, use)
            if use.role > mine.role:
                mine.role, mine.chain = use.role, mine.chain or use.chain
        self.called_unlisted = self.called_unlisted or inner.called_unlisted
        return result.error

    def _failed(self, start: int, message: str) -> RunResult:
        return RunResult(None, message, self.stream.tell(), self.significant, start, self.stream.tell())

    def _loop(self) -> object:
        read = self.stream.read
        table = self._table
        while True:
            op = read(1)
            if not op:
                raise EOFError("no STOP opcode before the end of the data")
            handler = table[op[0]]
            if handler is None:
                raise PickleError(f"invalid opcode {op!r} at offset {self.stream.tell() - 1}")
            self.ops += 1
            if not self.ops & 0xFFFF:
                self._check_limits()
            handler()

    def _check_limits(self) -> None:
        lim = self.limits
        if self.ops > lim.max_opcodes:
            raise LimitExceeded(f"more than {lim.max_opcodes} opcodes")
        if len(self.memo) > lim.max_memo:
            raise LimitExceeded(f"more than {lim.max_memo} memo entries")
        if len(self.stack) + sum(len(s) for s in self.metastack) > lim.max_stack:
            raise LimitExceeded(f"more than {lim.max_stack} values on the stack")

    # -- reading arguments ------------------------------------------------------------------------------

    def offset(self) -> int:
        return self.stream.tell()

    def _line(self) -> bytes:
        line = self.stream.readline(self.limits.max_line + 1)
        if not line.endswith(b"\n"):
            if len(line) > self.limits.max_line:
                raise LimitExceeded(f"text argument longer than {self.limits.max_line} bytes")
            raise EOFError("a text argument has no end of line")
        return line[:-1]

    def _unpack(self, fmt: str, size: int) -> int:
        value: int = struct.unpack(fmt, self.stream.read_exact(size))[0]
        return value

    def _payload(self, size: int, kind: str) -> object:
        """A length-prefixed string/bytes argument: kept when small, skipped (never read) when large."""
        if size < 0:
            raise PickleError("negative byte count")
        if size <= self.limits.inline_bytes:
            data = self.stream.read_exact(size)
            value = _decode(data, kind)
            if self.nested is not None and size >= 8:
                self.nested_literal(data, value)
            return value
        left = self.stream.remaining
        if left is not None and left < size:
            raise EOFError(f"payload of {size} bytes, only {left} left")
        head = self.stream.peek(64)
        if self.nested is not None and self.looks_nested(head):
            sub = self.stream.sub(size)
            self.nested(sub, self.stream.tell())
            sub.close()
        elif self.stream.skip(size) != size:
            raise EOFError(f"payload of {size} bytes is cut short")
        return BlobVal(kind, size, head)

    # -- opcodes: control ---------------------------------------------------------------------------------

    def op_proto(self) -> None:
        proto = self.stream.read_exact(1)[0]
        if proto > HIGHEST_PROTOCOL:
            raise PickleError(f"unsupported pickle protocol {proto}")
        self.proto = proto
        self.significant = True

    def op_frame(self) -> None:
        # The C unpickler only checks that the frame's bytes exist; opcodes may cross frame ends.
        size = self._unpack("<Q", 8)
        left = self.stream.remaining
        if left is not None and size > left:
            raise EOFError(f"FRAME of {size} bytes, only {left} left")

    def op_stop(self) -> None:
        raise _Stop(self.stack.pop())

    def op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list[object]:
        items = self.stack
        if not self.metastack:
            raise PickleError("MARK expected but not found")
        self.stack = self.metastack.pop()
        return items

    def op_pop(self) -> None:
        if self.stack:
            del self.stack[-1]
        else:
            self.pop_mark()

    def op_pop_mark(self) -> None:
        self.pop_mark()

    def op_dup(self) -> None:
        self.stack.append(self.stack[-1])

    # -- opcodes: memo --------------------------------------------------------------------------------------

    def _get(self, index: int) -> None:
        if index not in self.memo:
            raise PickleError(f"memo key {index} was never stored")
        self.stack.append(self.memo[index])

    def _put(self, index: int) -> None:
        if index < 0:
            raise PickleError("negative PUT argument")
        self.memo[index] = self.stack[-1]

    def op_get(self) -> None:
        self._get(int(self._line()))

    def op_binget(self) -> None:
        self._get(self.stream.read_exact(1)[0])

    def op_long_binget(self) -> None:
        self._get(self._unpack("<I", 4))

    def op_put(self) -> None:
        self._put(int(self._line()))

    def op_binput(self) -> None:
        self._put(self.stream.read_exact(1)[0])

    def op_long_binput(self) -> None:
        self._put(self._unpack("<I", 4))

    def op_memoize(self) -> None:
        self.memo[len(self.memo)] = self.stack[-1]

    # -- opcodes: numbers and constants ---------------------------------------------------------------------

    def op_none(self) -> None:
        self.stack.append(None)

    def op_true(self) -> None:
        self.stack.append(True)

    def op_false(self) -> None:
        self.stack.append(False)

    def op_int(self) -> None:
        data = self._line()
        self.stack.append(False if data == b"00" else True if data == b"01" else int(data, 0))

    def op_long(self) -> None:
        data = self._line()
        self.stack.append(int(data[:-1] if data.endswith(b"L") else data, 0))

    def op_float(self) -> None:
        self.stack.append(float(self._line()))

    def op_binint(self) -> None:
        self.stack.append(self._unpack("<i", 4))

    def op_binint1(self) -> None:
        self.stack.append(self.stream.read_exact(1)[0])

    def op_binint2(self) -> None:
        self.stack.append(self._unpack("<H", 2))

    def op_long1(self) -> None:
        size = self.stream.read_exact(1)[0]
        self.stack.append(int.from_bytes(self.stream.read_exact(size), "little", signed=True))

    def op_long4(self) -> None:
        size = self._unpack("<i", 4)
        if size < 0:
            raise PickleError("LONG4 byte count < 0")
        if size > 1 << 20:
            raise LimitExceeded("LONG4 integer longer than 1 MiB")
        self.stack.append(int.from_bytes(self.stream.read_exact(size), "little", signed=True))

    def op_binfloat(self) -> None:
        self.stack.append(struct.unpack(">d", self.stream.read_exact(8))[0])

    # -- opcodes: strings and bytes -----------------------------------------------------------------------

    def op_string(self) -> None:
        data = self._line()
        if len(data) < 2 or data[0] != data[-1] or data[:1] not in (b"'", b'"'):
            raise PickleError("the STRING opcode argument must be quoted")
        self.stack.append(_decode(codecs.escape_decode(data[1:-1])[0], "string"))

    def op_binstring(self) -> None:
        self.stack.append(self._payload(self._unpack("<i", 4), "string"))

    def op_short_binstring(self) -> None:
        self.stack.append(self._payload(self.stream.read_exact(1)[0], "string"))

    def op_binbytes(self) -> None:
        self.stack.append(self._payload(self._unpack("<I", 4), "bytes"))

    def op_short_binbytes(self) -> None:
        self.stack.append(self._payload(self.stream.read_exact(1)[0], "bytes"))

    def op_binbytes8(self) -> None:
        self.stack.append(self._payload(self._unpack("<Q", 8), "bytes"))

    def op_bytearray8(self) -> None:
        self.stack.append(self._payload(self._unpack("<Q", 8), "bytes"))

    def op_unicode(self) -> None:
        self.stack.append(str(self._line(), "raw-unicode-escape"))

    def op_binunicode(self) -> None:
        self.stack.append(self._payload(self._unpack("<I", 4), "unicode"))

    def op_short_binunicode(self) -> None:
        self.stack.append(self._payload(self.stream.read_exact(1)[0], "unicode"))

    def op_binunicode8(self) -> None:
        self.stack.append(self._payload(self._unpack("<Q", 8), "unicode"))

    def op_next_buffer(self) -> None:
        self.stack.append(OpaqueVal("out-of-band buffer"))

    def op_readonly_buffer(self) -> None:
        if not self.stack:
            raise PickleError("stack underflow")


def _decode(data: bytes, kind: str) -> object:
    if kind == "bytes":
        return data
    if kind == "unicode":
        return data.decode("utf-8", "surrogatepass")
    for encoding in ("ascii", "utf-8", "latin-1"):  # pickle.load's default, then torch.load's, then anything
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data  # pragma: no cover - latin-1 decodes every byte string


_OPCODES = {
    b"(": "op_mark", b".": "op_stop", b"0": "op_pop", b"1": "op_pop_mark", b"2": "op_dup", b"F": "op_float",
    b"I": "op_int", b"J": "op_binint", b"K": "op_binint1", b"L": "op_long", b"M": "op_binint2", b"N": "op_none",
    b"P": "op_persid", b"Q": "op_binpersid", b"R": "op_reduce", b"S": "op_string", b"T": "op_binstring",
    b"U": "op_short_binstring", b"V": "op_unicode", b"X": "op_binunicode", b"a": "op_append", b"b": "op_build",
    b"c": "op_global", b"d": "op_dict", b"}": "op_empty_dict", b"e": "op_appends", b"g": "op_get",
    b"h": "op_binget", b"i": "op_inst", b"j": "op_long_binget", b"l": "op_list", b"]": "op_empty_list",
    b"o": "op_obj", b"p": "op_put", b"q": "op_binput", b"r": "op_long_binput", b"s": "op_setitem",
    b"t": "op_tuple", b")": "op_empty_tuple", b"u": "op_setitems", b"G": "op_binfloat", b"\x80": "op_proto",
    b"\x81": "op_newobj", b"\x82": "op_ext1", b"\x83": "op_ext2", b"\x84": "op_ext4", b"\x85": "op_tuple1",
    b"\x86": "op_tuple2", b"\x87": "op_tuple3", b"\x88": "op_true", b"\x89": "op_false", b"\x8a": "op_long1",
    b"\x8b": "op_long4", b"B": "op_binbytes", b"C": "op_short_binbytes", b"\x8c": "op_short_binunicode",
    b"\x8d": "op_binunicode8", b"\x8e": "op_binbytes8", b"\x8f": "op_empty_set", b"\x90": "op_additems",
    b"\x91": "op_frozenset", b"\x92": "op_newobj_ex", b"\x93": "op_stack_global", b"\x94": "op_memoize",
    b"\x95": "op_frame", b"\x96": "op_bytearray8", b"\x97": "op_next_buffer", b"\x98": "op_readonly_buffer",
}  # fmt: skip

OPCODE_BYTES = frozenset(op[0] for op in _OPCODES)


def _build_table(machine: Machine) -> list[Callable[[], None] | None]:
    table: list[Callable[[], None] | None] = [None] * 256
    for op, name in _OPCODES.items():
        table[op[0]] = getattr(machine, name)
    return table
