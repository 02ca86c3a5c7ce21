"""What the scanner allows: the allow-list (data, extendable), the deny-list (severity) and the limits.

The allow-list is the gate: a global it does not list, with a role at least as strong as its use, makes
a file unsafe. The deny-list only decides whether such a global is reported as ``malicious``; it is never
what keeps a file out, so a gap in it cannot let a file through (docs/scanner.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Python 2 module names that CPython's unpickler maps to their Python 3 homes (protocol < 3).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "httplib": "http.client"}


class Role(IntEnum):
    """How strongly a pickle uses a global: a stronger role needs a stronger allow-list entry."""

    REF = 1
    CLASS = 2
    CALL = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r} (use call, class or ref)") from None


@dataclass(frozen=True, slots=True, order=True)
class GlobalRef:
    """A global as a pickle names it: the module and the (possibly dotted) qualified name."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"

    @classmethod
    def parse(cls, text: str) -> GlobalRef:
        """``module:qualname`` (unambiguous) or ``module.name`` (split at the last dot)."""
        if ":" in text:
            module, _, name = text.partition(":")
        else:
            module, _, name = text.rpartition(".")
        if not module or not name:
            raise ValueError(f"not a global: {text!r} (write module:name or module.name)")
        return cls(module, name)

    @property
    def dotted(self) -> bool:
        """A dotted name walks attributes (``Bdb.run``): CPython resolves it with getattr at protocol 4+."""
        return "." in self.name

    @property
    def dunder(self) -> bool:
        return any(part.startswith("__") and part.endswith("__") for part in self.name.split("."))


def _in_module(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True)
class AllowList:
    """Globals a pickle may import, each with its strongest allowed :class:`Role` (a value object)."""

    entries: tuple[tuple[GlobalRef, Role], ...] = ()
    patterns: tuple[tuple[str, Role], ...] = ()
    higher_order: tuple[tuple[GlobalRef, tuple[Role, ...]], ...] = ()
    _roles: Mapping[GlobalRef, Role] = field(init=False, repr=False, compare=False)
    _calls: Mapping[GlobalRef, tuple[Role, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles: dict[GlobalRef, Role] = {}
        for ref, role in self.entries:
            roles[ref] = max(role, roles.get(ref, role))
        object.__setattr__(self, "_roles", roles)
        object.__setattr__(self, "_calls", dict(self.higher_order))

    @classmethod
    def default(cls) -> AllowList:
        """The packaged allow-list (``mlwarden/scan/allowlist.toml``)."""
        return _default_allowlist()

    @classmethod
    def from_toml(cls, text: str) -> AllowList:
        data = tomllib.loads(text)
        entries = [
            (GlobalRef(module, name), Role.parse(role))
            for role in ("call", "class", "ref")
            for module, names in data.get(role, {}).items()
            for name in names
        ]
        patterns = [
            (prefix, Role.parse(role)) for role, prefixes in data.get("patterns", {}).items() for prefix in prefixes
        ]
        for prefix, role in patterns:
            if role is Role.CALL:
                raise ValueError(f"pattern {prefix!r}: patterns may grant class or ref, never call")
        higher = [
            (GlobalRef.parse(name), tuple(Role.parse(r) for r in roles))
            for name, roles in data.get("higher_order", {}).items()
        ]
        return cls(tuple(sorted(entries)), tuple(sorted(patterns)), tuple(sorted(higher)))

    def extended(self, globals: Iterable[str | GlobalRef], role: Role = Role.CALL) -> AllowList:
        """A new allow-list that also allows ``globals`` (``module:name`` or ``module.name``) as ``role``."""
        added = [(g if isinstance(g, GlobalRef) else GlobalRef.parse(g), role) for g in globals]
        return AllowList(tuple(sorted({*self.entries, *added})), self.patterns, self.higher_order)

    def explicit_role(self, ref: GlobalRef) -> Role | None:
        return self._roles.get(ref)

    def pattern_role(self, ref: GlobalRef) -> Role | None:
        if not _IDENT.match(ref.name) or ref.dunder:
            return None
        best: Role | None = None
        for prefix, role in self.patterns:
            if _in_module(ref.module, prefix) and (best is None or role > best):
                best = role
        return best

    def argument_roles(self, ref: GlobalRef) -> tuple[Role, ...]:
        """For an allowed higher-order callable: the role each positional argument is used in."""
        return self._calls.get(ref, ())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"call": {}, "class": {}, "ref": {}}
        for ref, role in self.entries:
            out[role.name.lower()].setdefault(ref.module, []).append(ref.name)
        out["patterns"] = {"class": [p for p, r in self.patterns if r is Role.CLASS]}
        out["patterns"]["ref"] = [p for p, r in self.patterns if r is Role.REF]
        out["higher_order"] = {str(ref): [r.name.lower() for r in roles] for ref, roles in self.higher_order}
        return out

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form, so a report says exactly which allow-list judged it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class DenyList:
    """Known-dangerous globals: matching one makes a finding ``malicious`` instead of ``unsafe``."""

    modules: Mapping[str, str] = field(default_factory=dict)  # module prefix -> category
    names: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> DenyList:
        return _default_denylist()

    @classmethod
    def from_toml(cls, text: str) -> DenyList:
        data = tomllib.loads(text)
        modules = {m: category for category, ms in data.get("modules", {}).items() for m in ms}
        names = {m: frozenset(ns) for m, ns in data.get("names", {}).items()}
        return cls(modules, names)

    def match(self, ref: GlobalRef) -> str | None:
        """The reason ``ref`` is denied, or None."""
        module = _PY2_MODULES.get(ref.module, ref.module)
        head = ref.name.split(".", 1)[0]
        if head in self.names.get(module, ()):
            return f"{module}.{head} is on the deny-list"
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            category = self.modules.get(".".join(parts[:i]))
            if category is not None:
                return f"module {'.'.join(parts[:i])} is on the deny-list ({category})"
        return None


@dataclass(frozen=True)
class Limits:
    """Bounds on work and memory; exceeding one makes the file ``unverifiable``, never clean."""

    max_depth: int = 8  # containers and nested pickles inside one another
    max_members: int = 100_000  # entries of one archive
    max_member_bytes: int = 64 << 30  # decompressed size of one member
    max_total_bytes: int = 256 << 30  # decompressed bytes read for one top-level file
    max_ratio: int = 250  # decompressed / compressed, checked once a member passes ratio_floor
    ratio_floor: int = 64 << 20
    max_spool_bytes: int = 8 << 30  # a nested archive copied to a temporary file to be read randomly
    max_opcodes: int = 500_000_000
    max_memo: int = 20_000_000
    max_stack: int = 10_000_000
    max_kept_items: int = 2_000_000  # container items the symbolic unpickler remembers (memory bound)
    inline_bytes: int = 1 << 20  # payloads up to this size are read; larger ones are skipped
    max_line: int = 1 << 20  # protocol 0 text arguments
    max_nested_decode: int = 32 << 20  # base64/hex strings decoded to look for a pickle inside
    max_header: int = 100 << 20  # JSON headers and configs (safetensors, Keras)


@dataclass(frozen=True)
class ScanPolicy:
    """Everything that decides a verdict: the allow-list, the deny-list and the limits."""

    allow: AllowList = field(default_factory=AllowList.default)
    deny: DenyList = field(default_factory=DenyList.default)
    limits: Limits = field(default_factory=Limits)

    def allowed_role(self, ref: GlobalRef) -> Role | None:
        """The strongest role ``ref`` may be used in: explicit entries win; patterns yield to the deny-list."""
        explicit = self.allow.explicit_role(ref)
        if explicit is not None:
            return explicit
        role = self.allow.pattern_role(ref)
        if role is not None and self.deny.match(ref) is not None:
            return None
        return role


@cache
def _default_allowlist() -> AllowList:
    return AllowList.from_toml(resources.files("mlwarden.scan").joinpath("allowlist.toml").read_text("utf-8"))


@cache
def _default_denylist() -> DenyList:
    return DenyList.from_toml(resources.files("mlwarden.scan").joinpath("denylist.toml").read_text("utf-8"))
