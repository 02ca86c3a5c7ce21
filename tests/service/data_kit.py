"""Test kit for datasets: a project with a steward, an engineer, a viewer and two approvers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mlwarden.service.workspace import Workspace
from tests.conftest import Env
from tests.service.access_kit import Person, StepClock, person

PROJECT = "fraud"


def frame(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """A small mixed-type table: ints, floats, strings, booleans, timestamps and a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n, dtype=np.int64),
            "amount": rng.normal(100, 15, n).round(2),
            "merchant": [f"m{i % 7}" for i in range(start, start + n)],
            "online": rng.integers(0, 2, n).astype(bool),
            "at": pd.date_range("2026-01-01", periods=n, freq="min") + pd.Timedelta(minutes=start),
            "label": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def data_team(env: Env, admin: Workspace, clock: StepClock) -> Iterator[dict[str, Person]]:
    """Project "fraud": root (admin), carol (second admin), sam (data_steward), alice (ml_engineer),
    vic (viewer), bob and dan (approvers)."""
    root = person(env, admin, clock, "admin")
    people = {
        name: person(env, admin, clock, name, is_admin=name == "carol", by=root)
        for name in ("carol", "sam", "alice", "vic", "bob", "dan")
    }
    people["root"] = root
    root.ws.projects.create(PROJECT)
    for name, role in (("sam", "data_steward"), ("alice", "ml_engineer"), ("vic", "viewer")):
        root.ws.roles.grant(name, role, PROJECT, totp=root.code())
    for name in ("bob", "dan"):
        request = root.ws.roles.grant(name, "approver", PROJECT, totp=root.code()).approval_request
        assert request is not None
        people["carol"].ws.approvals.approve(request, totp=people["carol"].code())
    yield people
    for someone in people.values():
        someone.ws.close()
