"""Symbolic values of the pickle VM: what an import, a call or a skipped payload stands for.

Plain data (None, bools, numbers, short strings and bytes, tuples, lists, dicts, sets) is kept as the
Python value itself; everything whose real value would need code to run is one of the classes here, so
the VM can follow it through the stack and the memo and name it in a finding (``os.system('id')``).
"""

from __future__ import annotations

from mlwarden.scan.policy import GlobalRef


class Sym:
    """Base of every symbolic value; hashable by identity, as the real objects would be."""

    __slots__ = ()


class GlobalVal(Sym):
    """The result of ``find_class(module, name)`` (GLOBAL, STACK_GLOBAL, INST, EXT)."""

    __slots__ = ("offset", "ref")

    def __init__(self, ref: GlobalRef, offset: int) -> None:
        self.ref = ref
        self.offset = offset


class CallVal(Sym):
    """What ``func(*args)`` (kind ``call``) or ``cls.__new__(cls, *args)`` (kind ``new``) returned."""

    __slots__ = ("args", "func", "kind", "offset", "state")

    def __init__(self, func: object, args: object, kind: str, offset: int) -> None:
        self.func = func
        self.args = args
        self.kind = kind
        self.offset = offset
        self.state: object = None


class OpaqueVal(Sym):
    """A value only the loader knows: a persistent id's object, an out-of-band buffer."""

    __slots__ = ("detail", "what")

    def __init__(self, what: str, detail: object = None) -> None:
        self.what = what
        self.detail = detail


class BlobVal(Sym):
    """A string or bytes payload too large to keep: its kind, size and first bytes only."""

    __slots__ = ("head", "kind", "size")

    def __init__(self, kind: str, size: int, head: bytes) -> None:
        self.kind = kind
        self.size = size
        self.head = head


def describe(value: object, limit: int = 160) -> str:
    """A short Python-like rendering of a symbolic value, for call chains in findings."""
    text = _describe(value, 3)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(value: object, depth: int) -> str:
    if isinstance(value, GlobalVal):
        return str(value.ref)
    if isinstance(value, CallVal):
        return _describe_call(value, depth)
    if isinstance(value, BlobVal):
        return f"<{value.kind} of {value.size} bytes>"
    if isinstance(value, OpaqueVal):
        return f"<{value.what}>"
    if depth <= 0:
        return "…"
    if isinstance(value, tuple):
        inner = ", ".join(_describe(v, depth - 1) for v in value[:6])
        return f"({inner}{', …' if len(value) > 6 else ''}{',' if len(value) == 1 else ''})"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v, depth - 1) for v in value[:6]) + (", …]" if len(value) > 6 else "]")
    if isinstance(value, dict):
        items = list(value.items())[:4]
        body = ", ".join(f"{_describe(k, depth - 1)}: {_describe(v, depth - 1)}" for k, v in items)
        return "{" + body + (", …}" if len(value) > 4 else "}")
    if isinstance(value, str | bytes):
        return repr(value[:60]) + ("…" if len(value) > 60 else "")
    return repr(value)[:60]


def _describe_call(call: CallVal, depth: int) -> str:
    func = _describe(call.func, depth - 1)
    args = call.args
    if isinstance(args, tuple):
        inner = ", ".join(_describe(a, depth - 1) for a in args[:6]) + (", …" if len(args) > 6 else "")
    else:
        inner = "*" + _describe(args, depth - 1)
    prefix = f"{func}.__new__" if call.kind == "new" else func
    return f"{prefix}({inner})"


def globals_in(value: object, depth: int = 4) -> list[GlobalRef]:
    """The imports a value was built from (for the ``globals`` of a finding)."""
    found: list[GlobalRef] = []
    _collect(value, depth, found)
    return found


def _collect(value: object, depth: int, found: list[GlobalRef]) -> None:
    if depth < 0 or len(found) > 8:
        return
    if isinstance(value, GlobalVal):
        if value.ref not in found:
            found.append(value.ref)
    elif isinstance(value, CallVal):
        _collect(value.func, depth - 1, found)
        _collect(value.args, depth - 1, found)
    elif isinstance(value, tuple | list):
        for item in value[:8]:
            _collect(item, depth - 1, found)
