"""Tar archives (plain; compressed ones arrive here through the compressed scanner), read as a stream.

PyTorch's oldest format is a tar of ``sys_info``, ``pickle``, ``storages`` and ``tensors``; the latter
two interleave pickles with raw data, which is walked the way torch reads it.
"""

from __future__ import annotations

import struct
import tarfile

from mlwarden.scan.context import ScanContext
from mlwarden.scan.files import StreamFile
from mlwarden.scan.formats.pickle import ELEMENT_SIZE
from mlwarden.scan.model import Severity
from mlwarden.scan.pickle_values import GlobalVal
from mlwarden.scan.pickle_vm import Machine
from mlwarden.scan.source import ChunkStream, LimitExceeded, Stream

_TORCH_MEMBERS = {"sys_info", "pickle", "storages", "tensors"}


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].strip(b"\x00 ") or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 256 + sum(head[156:512])


class TarScanner:
    name = "tar"
    priority = 40

    def sniff(self, head: bytes, size: int | None) -> bool:
        return _is_tar(head)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        ctx.describe("tar")
        count = 0
        try:
            with tarfile.open(fileobj=StreamFile(stream), mode="r|") as tar:
                for member in tar:
                    count += 1
                    if count > ctx.limits.max_members:
                        raise LimitExceeded(f"more than {ctx.limits.max_members} tar members")
                    if not member.isfile():
                        continue
                    handle = tar.extractfile(member)
                    if handle is None:
                        continue
                    self._member(member.name, ChunkStream(handle.read, member.size), ctx)
        except (tarfile.TarError, OSError, EOFError) as error:
            ctx.add("corrupt-member", Severity.UNVERIFIABLE, f"cannot read the tar archive: {error}")
        return True

    def _member(self, name: str, stream: Stream, ctx: ScanContext) -> None:
        base = name.rsplit("/", 1)[-1]
        if base in ("storages", "tensors"):
            child = ctx.child(name)
            (_walk_storages if base == "storages" else _walk_tensors)(stream, child)
        else:
            ctx.scan_member(name, stream)


def _pickle(stream: Stream, ctx: ScanContext) -> object:
    vm = Machine(stream, ctx.policy)
    result = vm.run()
    for raw in vm.findings + vm.global_findings():
        ctx.add(raw.code, raw.severity, raw.message, offset=raw.offset, globals=raw.globals, chain=raw.chain)
    ctx.collector.globals.update(str(ref) for ref in vm.uses)
    if result.error is not None:
        ctx.add("malformed-pickle", Severity.UNSAFE, f"not a valid pickle: {result.error}", offset=result.error_offset)
        raise EOFError(result.error)
    return result.value


def _walk_storages(stream: Stream, ctx: ScanContext) -> None:
    """torch legacy tar ``storages``: a count, then per storage a pickle, an element count, the data."""
    ctx.recognize("pytorch-legacy-tar")
    try:
        count = _pickle(stream, ctx)
        for _ in range(count if isinstance(count, int) else 0):
            args = _pickle(stream, ctx)
            kind = args[2] if isinstance(args, tuple) and len(args) == 3 else None
            size = ELEMENT_SIZE.get(kind.ref.name) if isinstance(kind, GlobalVal) else None
            numel = struct.unpack("<q", stream.read_exact(8))[0]
            if size is None or numel < 0 or stream.skip(numel * size) != numel * size:
                raise EOFError("storage data cannot be walked")
    except EOFError as error:
        ctx.add("legacy-storages", Severity.INFO, f"storages not fully parsed: {error}")


def _walk_tensors(stream: Stream, ctx: ScanContext) -> None:
    """torch legacy tar ``tensors``: a count, then per tensor a pickle and its raw shape and strides."""
    try:
        count = _pickle(stream, ctx)
        for _ in range(count if isinstance(count, int) else 0):
            _pickle(stream, ctx)
            ndim = struct.unpack("<i", stream.read_exact(4))[0]
            if ndim < 0 or ndim > 64:
                raise EOFError(f"tensor with {ndim} dimensions")
            stream.read_exact(4 + 16 * ndim + 8)
    except EOFError as error:
        ctx.add("legacy-storages", Severity.INFO, f"tensors not fully parsed: {error}")
