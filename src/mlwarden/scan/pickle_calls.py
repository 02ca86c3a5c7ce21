"""Imports, calls, object building and container opcodes of the symbolic VM, and how they are judged.

Every global is recorded with the strongest way the stream uses it (a value, a class rebuilt with
``__new__``, or a callable); the allow-list must allow at least that. Calling something that is not a
global (a call's result: the ``attrgetter('system')(os)('id')`` trampoline), a STACK_GLOBAL whose
arguments are not strings, and BUILD or item assignment on an imported object (rewriting a module's
attributes) are reported on their own, as CPython would execute them.
"""

from __future__ import annotations

import _compat_pickle
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from mlwarden.scan.model import Severity
from mlwarden.scan.nested import decode_candidate, raw_kind
from mlwarden.scan.pickle_values import BlobVal, CallVal, GlobalVal, OpaqueVal, Sym, describe, globals_in
from mlwarden.scan.policy import GlobalRef, Role, ScanPolicy
from mlwarden.scan.source import BytesStream, Stream

Nested = Callable[[Stream, int], None]
_JOBLIB_WRAPPER = GlobalRef("joblib.numpy_pickle", "NumpyArrayWrapper")
_NUMPY_DTYPE = GlobalRef("numpy", "dtype")
_DTYPE_SIZE = re.compile(r"[A-Za-z]+(\d+)")
_ROLE_WORD = {Role.REF: "a value", Role.CLASS: "a class to instantiate", Role.CALL: "a callable"}


class PickleError(Exception):
    """The stream is not a valid pickle (CPython's unpickler would stop here too)."""


@dataclass
class GlobalUse:
    ref: GlobalRef
    offset: int
    role: Role
    chain: str | None = None


@dataclass(frozen=True)
class RawFinding:
    code: str
    severity: Severity
    message: str
    offset: int
    globals: tuple[str, ...] = ()
    chain: str | None = None


class CallsMixin(ABC):
    stack: list[object]
    stream: Stream
    proto: int

    def __init__(self, policy: ScanPolicy) -> None:
        self.policy = policy
        self.limits = policy.limits
        self.findings: list[RawFinding] = []
        self.uses: dict[GlobalRef, GlobalUse] = {}
        self.persistent_ids: list[object] = []
        self.significant = False
        self.called_unlisted = False  # something not allowed as a callable was called (nested reports)
        self.kept = 0

    # supplied by the machine
    @abstractmethod
    def pop_mark(self) -> list[object]: ...

    @abstractmethod
    def offset(self) -> int: ...

    @abstractmethod
    def _line(self) -> bytes: ...

    @abstractmethod
    def run_inline(self) -> str | None: ...

    nested: Nested | None

    # -- findings -------------------------------------------------------------------------------------

    def flag(self, code: str, severity: Severity, message: str, value: object = None, chain: str | None = None) -> None:
        names = tuple(str(r) for r in globals_in(value)) if value is not None else ()
        self.findings.append(RawFinding(code, severity, message, self.offset(), names, chain))
        if severity in (Severity.MALICIOUS, Severity.UNSAFE):
            self.called_unlisted = True

    def global_findings(self) -> list[RawFinding]:
        """One finding per global used beyond what the allow-list allows it."""
        out = []
        for use in self.uses.values():
            allowed = self.policy.allowed_role(use.ref)
            if allowed is not None and allowed >= use.role:
                continue
            out.append(self._judge(use, allowed))
        return out

    def _judge(self, use: GlobalUse, allowed: Role | None) -> RawFinding:
        ref = use.ref
        reason = self.policy.deny.match(ref)
        if ref.module == "<extension>":
            text = f"EXT code {ref.name}: resolved at load time from copyreg's extension registry"
            return RawFinding("extension-code", Severity.UNSAFE, text, use.offset, (str(ref),), use.chain)
        notes = [n for n in (reason, "attribute traversal in a global name" if ref.dotted else None) if n]
        if ref.dunder:
            notes.append("dunder name")
        if allowed is None:
            code, text = ("denied-global" if reason else "unlisted-global"), f"imports {ref}, not on the allow-list"
        else:
            code = "role-exceeded"
            text = f"uses {ref} as {_ROLE_WORD[use.role]}; the allow-list allows it only as {_ROLE_WORD[allowed]}"
        if use.role is Role.CALL:
            text += " (called while loading)"
        if notes:
            text += "; " + "; ".join(notes)
        malicious = bool(notes) or ref.module == "<computed>"
        severity = Severity.MALICIOUS if malicious else Severity.UNSAFE
        return RawFinding(code, severity, text, use.offset, (str(ref),), use.chain)

    def use(self, value: object, role: Role, chain: str | None, what: str) -> None:
        """``value`` is used in ``role`` (called, instantiated or kept): record or flag it."""
        if isinstance(value, GlobalVal):
            entry = self.uses.get(value.ref)
            if entry is None:
                entry = self.uses[value.ref] = GlobalUse(value.ref, value.offset, role)
            if role > entry.role:
                entry.role = role
            if role > Role.REF and entry.chain is None:
                entry.chain = chain
            allowed = self.policy.allowed_role(value.ref)
            if role is Role.CALL and (allowed is None or allowed < role):
                self.called_unlisted = True
        elif role > Role.REF and isinstance(value, CallVal | OpaqueVal | BlobVal):
            word = "calls" if role is Role.CALL else "instantiates"
            self.flag("computed-callable", Severity.MALICIOUS, f"{what} {word} a computed value", value, chain)
        elif role > Role.REF and not isinstance(value, Sym):
            raise PickleError(f"{what}: {type(value).__name__} is not callable")

    # -- imports ----------------------------------------------------------------------------------------

    def find_class(self, module: str, name: str) -> GlobalVal:
        if not module or not name:
            raise PickleError("empty module or global name")
        if self.proto < 3:  # CPython maps Python 2 names (fix_imports=True)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        self.significant = True
        value = GlobalVal(GlobalRef(module, name), self.offset())
        self.use(value, Role.REF, None, "import")
        return value

    def op_global(self) -> None:
        module = self._line().decode("utf-8")
        name = self._line().decode("utf-8")
        self.stack.append(self.find_class(module, name))

    def op_stack_global(self) -> None:
        name = self.stack.pop()
        module = self.stack.pop()
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self.find_class(module, name))
            return
        self.significant = True
        text = f"STACK_GLOBAL names a global computed at load time: module={describe(module)}, name={describe(name)}"
        value = GlobalVal(GlobalRef("<computed>", f"{describe(module, 60)}.{describe(name, 60)}"), self.offset())
        self.flag("computed-global", Severity.MALICIOUS, text, (module, name))
        self.use(value, Role.REF, None, "STACK_GLOBAL")
        self.stack.append(value)

    def _ext(self, code: int) -> None:
        if code <= 0:
            raise PickleError("EXT specifies code <= 0")
        self.significant = True
        value = GlobalVal(GlobalRef("<extension>", str(code)), self.offset())
        self.use(value, Role.REF, None, "EXT")
        self.stack.append(value)

    def op_ext1(self) -> None:
        self._ext(self.stream.read_exact(1)[0])

    def op_ext2(self) -> None:
        self._ext(int.from_bytes(self.stream.read_exact(2), "little"))

    def op_ext4(self) -> None:
        self._ext(int.from_bytes(self.stream.read_exact(4), "little", signed=True))

    # -- calls -------------------------------------------------------------------------------------------

    def _call(self, func: object, args: object, kind: str, what: str) -> CallVal:
        if not isinstance(args, tuple | Sym):
            raise PickleError(f"{what}: the argument list is a {type(args).__name__}, not a tuple")
        self.significant = True
        result = CallVal(func, args, kind, self.offset())
        chain = describe(result)
        role = Role.CALL if kind == "call" else Role.CLASS
        self.use(func, role, chain, what)
        if isinstance(func, GlobalVal) and isinstance(args, tuple):
            allowed = self.policy.allowed_role(func.ref)
            if allowed is not None and allowed >= role:
                for arg, arg_role in zip(args, self.policy.allow.argument_roles(func.ref), strict=False):
                    self.use(arg, arg_role, chain, f"{func.ref} argument")
        return result

    def op_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, "call", "REDUCE")

    def op_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(self._call(cls, args, "new", "NEWOBJ"))

    def op_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(kwargs, dict | Sym):
            raise PickleError("NEWOBJ_EX keyword arguments are not a dict")
        self.stack.append(self._call(cls, args, "new", "NEWOBJ_EX"))

    def op_inst(self) -> None:
        module = self._line().decode("ascii")
        name = self._line().decode("ascii")
        cls = self.find_class(module, name)
        args = tuple(self.pop_mark())
        self.stack.append(self._call(cls, args, "call", "INST"))

    def op_obj(self) -> None:
        items = self.pop_mark()
        cls = items.pop(0)
        self.stack.append(self._call(cls, tuple(items), "call", "OBJ"))

    def op_persid(self) -> None:
        pid = self._line().decode("ascii")
        self._persistent(pid)

    def op_binpersid(self) -> None:
        self._persistent(self.stack.pop())

    def _persistent(self, pid: object) -> None:
        if len(self.persistent_ids) < self.limits.max_kept_items:
            self.persistent_ids.append(pid)
        self.stack.append(OpaqueVal("persistent object", pid))

    # -- building objects and filling containers ------------------------------------------------------------

    def op_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, GlobalVal):
            if state is not None:
                text = f"BUILD on the imported {inst.ref} rewrites its attributes for the whole process"
                self.flag("mutates-import", Severity.MALICIOUS, text, inst, describe((inst, state)))
        elif isinstance(inst, CallVal):
            inst.state = state
            self.significant = True
            if isinstance(inst.func, GlobalVal) and inst.func.ref == _JOBLIB_WRAPPER:
                self._joblib_array(state)
        elif not isinstance(inst, Sym) and state is not None:
            raise PickleError(f"BUILD on a {type(inst).__name__}")

    def _mutates(self, target: object, what: str) -> bool:
        """False when ``target`` is not a plain container (an object's own method would run)."""
        if isinstance(target, GlobalVal):
            self.flag("mutates-import", Severity.MALICIOUS, f"{what} on the imported {target.ref}", target)
            return False
        if isinstance(target, Sym):
            return False
        return True

    def _keep(self, n: int) -> bool:
        self.kept += n
        return self.kept <= self.limits.max_kept_items

    def op_empty_tuple(self) -> None:
        self.stack.append(())

    def op_tuple(self) -> None:
        items = tuple(self.pop_mark())
        self.stack.append(items)

    def op_tuple1(self) -> None:
        self.stack[-1] = (self.stack[-1],)

    def op_tuple2(self) -> None:
        self.stack[-2:] = [(self.stack[-2], self.stack[-1])]

    def op_tuple3(self) -> None:
        self.stack[-3:] = [(self.stack[-3], self.stack[-2], self.stack[-1])]

    def op_empty_list(self) -> None:
        self.stack.append([])

    def op_list(self) -> None:
        items = self.pop_mark()
        self.stack.append(items)

    def op_append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if self._mutates(target, "APPEND") and isinstance(target, list) and self._keep(1):
            target.append(value)

    def op_appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if self._mutates(target, "APPENDS") and isinstance(target, list) and self._keep(len(items)):
            target.extend(items)

    def op_empty_dict(self) -> None:
        self.stack.append({})

    def op_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise PickleError("odd number of items for DICT")
        self.stack.append(dict(zip(items[::2], items[1::2], strict=True)))

    def _setitems(self, items: list[object], what: str) -> None:
        if len(items) % 2:
            raise PickleError(f"odd number of items for {what}")
        target = self.stack[-1]
        if self._mutates(target, what) and isinstance(target, dict):
            if self._keep(len(items) // 2):
                target.update(zip(items[::2], items[1::2], strict=True))
            else:
                for key in items[::2]:
                    hash(key)

    def op_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._setitems([key, value], "SETITEM")

    def op_setitems(self) -> None:
        self._setitems(self.pop_mark(), "SETITEMS")

    def op_empty_set(self) -> None:
        self.stack.append(set())

    def op_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if self._mutates(target, "ADDITEMS") and isinstance(target, set) and self._keep(len(items)):
            target.update(items)

    def op_frozenset(self) -> None:
        items = self.pop_mark()
        self.stack.append(frozenset(items))

    # -- joblib arrays: raw bytes between pickle opcodes ---------------------------------------------------

    def _joblib_array(self, state: object) -> None:
        """joblib's NumpyUnpickler reads the array right after BUILD of its wrapper: skip it as it would."""
        if not isinstance(state, dict):
            raise PickleError("NumpyArrayWrapper state is not a dict")
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise PickleError("NumpyArrayWrapper shape is not a tuple of sizes")
        itemsize, hasobject = dtype_info(state.get("dtype"))
        if hasobject:  # joblib calls pickle.load on the same file: a pickle inside the pickle
            error = self.run_inline()
            if error is not None:
                raise PickleError(f"object array inside a joblib file: {error}")
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.stream.read_exact(1)[0]
            self.stream.read_exact(padding)
        size = math.prod(shape) * itemsize
        if self.stream.skip(size) != size:
            raise EOFError(f"joblib array of {size} bytes is cut short")

    # -- strings that hold a pickle ------------------------------------------------------------------

    def looks_nested(self, head: bytes) -> bool:
        return raw_kind(head) is not None

    def nested_literal(self, data: bytes, value: object) -> None:
        found = decode_candidate(data, self.limits.max_nested_decode)
        if found is not None and self.nested is not None:
            self.nested(BytesStream(found[1]), self.offset())


def dtype_info(dtype: object) -> tuple[int, bool]:
    """(itemsize, has Python objects) of a pickled ``numpy.dtype(...)`` call with its BUILD state."""
    if not (isinstance(dtype, CallVal) and isinstance(dtype.func, GlobalVal) and dtype.func.ref == _NUMPY_DTYPE):
        raise PickleError("array dtype is not a numpy.dtype")
    args, state = dtype.args, dtype.state
    code = args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else ""
    hasobject = code.startswith("O")
    itemsize = 0
    if isinstance(state, tuple) and len(state) >= 8:
        if isinstance(state[5], int) and state[5] > 0:
            itemsize = state[5]
        hasobject = hasobject or (isinstance(state[7], int) and bool(state[7] & 1))
    if not itemsize:
        match = _DTYPE_SIZE.match(code)
        itemsize = int(match.group(1)) if match else 0
    if itemsize <= 0 and not hasobject:
        raise PickleError(f"cannot size dtype {code!r}")
    return itemsize, hasobject
