"""Raw pickles (protocols 0-5), stacked pickles, joblib files and legacy PyTorch files.

A loader may call ``pickle.load`` more than once on the same file (legacy ``torch.load`` does five
times, then reads raw storages), so every pickle in a file is scanned, not only the first. Bytes after
the last pickle that are not a pickle at all are reported for information; a later pickle that breaks
half-way is malformed (``unsafe``), as is any pickle that breaks after it began.
"""

from __future__ import annotations

from mlwarden.scan.context import Collector, ScanContext
from mlwarden.scan.model import Severity
from mlwarden.scan.nested import raw_kind
from mlwarden.scan.pickle_values import GlobalVal
from mlwarden.scan.pickle_vm import OPCODE_BYTES, Machine, RunResult
from mlwarden.scan.source import LimitExceeded, Stream

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QInt8Storage": 1, "QUInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip


class PickleScanner:
    name = "pickle"
    priority = 90  # last: pickles have no magic number, only a first opcode

    def sniff(self, head: bytes, size: int | None) -> bool:
        return bool(head) and head[0] in OPCODE_BYTES

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        return scan_pickles(stream, ctx)


def scan_pickles(stream: Stream, ctx: ScanContext, *, lenient: bool = False, label: str = "pickle") -> bool:
    """Scan every pickle in ``stream``. ``lenient`` (a pickle found inside a string) reports only when
    the nested pickle would call something not allowed, or is complete and has findings."""
    if not lenient:
        return _Stacked(stream, ctx, label).run()
    scratch = ScanContext(ctx.policy, Collector(), ctx.budget, ctx.where, ctx.depth)
    runner = _Stacked(stream, scratch, label, lenient=True)
    if runner.run() and runner.worthy:
        ctx.collector.findings.extend(scratch.collector.findings)
        ctx.collector.globals.update(scratch.collector.globals)
    return False


class _Stacked:
    def __init__(self, stream: Stream, ctx: ScanContext, label: str, *, lenient: bool = False) -> None:
        self.stream = stream
        self.ctx = ctx
        self.label = label
        self.lenient = lenient
        self.worthy = False
        self.legacy = False
        self.storage_types: dict[str, str | None] = {}

    def run(self) -> bool:
        index = 0
        while self.stream.peek(1):
            start = self.stream.tell()
            vm = Machine(self.stream, self.ctx.policy, self._nested)
            try:
                result = vm.run()
            except LimitExceeded as error:
                self._report(vm, complete=False)
                self.ctx.add("limit-exceeded", Severity.UNVERIFIABLE, str(error), offset=start)
                self.worthy = True
                return True
            if result.error is not None and not result.significant:
                if index == 0:
                    return False
                self._trailing(start)
                break
            if index == 0 and not self.lenient:
                self.ctx.recognize(self.label)
            self._report(vm, complete=result.error is None)
            if result.error is not None:
                self._malformed(result)
                break
            index += 1
            if not self._after(index, result, vm):
                break
        return True

    def _after(self, index: int, result: RunResult, vm: Machine) -> bool:
        """Legacy torch.load: magic, protocol, sys_info, the object, storage keys, then raw storages."""
        if index == 1 and type(result.value) is int and result.value == LEGACY_MAGIC:
            self.legacy = True
            if not self.lenient:
                self.ctx.recognize("pytorch-legacy", prefer=True)
        if self.legacy and index == 4:
            self._storage_types(vm.persistent_ids)
        if self.legacy and index == 5:
            self.legacy = False
            return self._walk_storages(result.value)
        return True

    def _report(self, vm: Machine, *, complete: bool) -> None:
        raws = vm.findings + vm.global_findings()
        self.worthy = self.worthy or vm.called_unlisted or (complete and bool(raws))
        for raw in raws:
            self.ctx.add(raw.code, raw.severity, raw.message, offset=raw.offset, globals=raw.globals, chain=raw.chain)
        self.ctx.collector.globals.update(str(ref) for ref in vm.uses)

    def _malformed(self, result: RunResult) -> None:
        message = f"not a valid pickle: {result.error} (CPython's unpickler stops here; what ran before still ran)"
        self.ctx.add("malformed-pickle", Severity.UNSAFE, message, offset=result.error_offset)

    def _trailing(self, start: int) -> None:
        left = self.stream.remaining
        size = f"{left + (self.stream.tell() - start)} bytes" if left is not None else "data"
        self.ctx.add("trailing-data", Severity.INFO, f"{size} after the last pickle are not a pickle", offset=start)

    def _nested(self, sub: Stream, offset: int) -> None:
        """A string or bytes value of the pickle holds another pickle or an archive."""
        try:
            child = self.ctx.child(f"@{offset}")
        except LimitExceeded as error:
            self.ctx.add("limit-exceeded", Severity.UNVERIFIABLE, str(error), offset=offset)
            return
        if raw_kind(sub.peek(8)) == "zip":
            child.scan(sub)
        else:
            scan_pickles(sub, child, lenient=True, label="nested pickle")

    def _storage_types(self, pids: list[object]) -> None:
        for pid in pids:
            if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], str):
                kind = pid[1]
                self.storage_types[pid[2]] = kind.ref.name if isinstance(kind, GlobalVal) else None

    def _walk_storages(self, keys: object) -> bool:
        """Skip the raw storages (an 8-byte element count, then the elements) the way torch reads them."""
        if not isinstance(keys, list):
            self.ctx.add("legacy-storages", Severity.INFO, "storage keys are not a list; raw data not parsed")
            return False
        for key in keys:
            size = ELEMENT_SIZE.get(self.storage_types.get(key) or "") if isinstance(key, str) else None
            raw = self.stream.read(8) if size is not None else b""
            count = int.from_bytes(raw, "little", signed=True) if len(raw) == 8 else -1
            if size is None or count < 0 or self.stream.skip(count * size) != count * size:
                note = "ends early (truncated file)" if size is not None else f"has an unknown storage {key!r}"
                self.ctx.add("legacy-storages", Severity.INFO, f"legacy PyTorch storage data {note}")
                return False
        return True
