"""The allow-list as data: parsing, roles, extension, digest; the deny-list; the registered scanners."""

from __future__ import annotations

import pytest

from mlwarden.scan import AllowList, GlobalRef, Role, ScanPolicy, Verdict, scan_bytes
from mlwarden.scan.registry import scanners
from tests.scan import craft as c


def test_global_ref_parsing() -> None:
    assert GlobalRef.parse("os:system") == GlobalRef("os", "system")
    assert GlobalRef.parse("a.b.c") == GlobalRef("a.b", "c")
    assert GlobalRef.parse("bdb:Bdb.run").dotted
    with pytest.raises(ValueError, match="not a global"):
        GlobalRef.parse("nodots")


def test_roles_are_enforced() -> None:
    policy = ScanPolicy()
    assert policy.allowed_role(GlobalRef("collections", "OrderedDict")) is Role.CALL
    assert policy.allowed_role(GlobalRef("sklearn.linear_model._logistic", "LogisticRegression")) is Role.CLASS
    assert policy.allowed_role(GlobalRef("sklearn.datasets", "fetch_openml")) is None  # deny beats a pattern
    assert policy.allowed_role(GlobalRef("sklearn.linear_model", "Foo.__init__")) is None
    # a class the allow-list only lets pickle rebuild may not be called with arguments
    called = c.call("sklearn.linear_model._logistic", "LogisticRegression", c.s("x"))
    assert scan_bytes(called).verdict is Verdict.UNSAFE


def test_extended_allow_list_is_a_new_value() -> None:
    base = AllowList.default()
    data = c.call("mypkg.layers", "Custom", c.s("x"))
    assert scan_bytes(data).verdict is Verdict.UNSAFE
    extended = base.extended(["mypkg.layers:Custom"])
    assert extended != base and extended.digest() != base.digest()
    assert scan_bytes(data, policy=ScanPolicy(allow=extended)).verdict is Verdict.CLEAN
    assert base.explicit_role(GlobalRef("mypkg.layers", "Custom")) is None


def test_allow_list_round_trips_and_rejects_call_patterns() -> None:
    default = AllowList.default()
    assert default.to_dict()["call"]["collections"]
    with pytest.raises(ValueError, match="never call"):
        AllowList.from_toml('[patterns]\ncall = ["os"]\n')


def test_deny_list_sets_severity_only() -> None:
    policy = ScanPolicy()
    assert policy.deny.match(GlobalRef("posix", "system"))
    assert policy.deny.match(GlobalRef("__builtin__", "eval"))
    assert policy.deny.match(GlobalRef("some_pkg", "run")) is None
    assert scan_bytes(c.call("some_pkg", "run")).verdict is Verdict.UNSAFE
    assert scan_bytes(c.call("posix", "system")).verdict is Verdict.MALICIOUS


def test_built_in_scanners_are_registered_as_entry_points() -> None:
    names = {s.name for s in scanners()}
    expected = {"zip", "7z", "tar", "compressed", "numpy", "hdf5", "safetensors", "gguf", "protobuf", "pickle"}
    assert expected <= names


def test_scan_public_surface() -> None:
    import inspect

    import mlwarden.scan as scan

    for name in scan.__all__:
        obj = getattr(scan, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
