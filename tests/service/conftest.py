"""Fixtures of the service tests."""

from __future__ import annotations

import pytest

from tests.service.access_kit import StepClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    """The clock of the MFA code paths, under the test's control."""
    fake = StepClock()
    monkeypatch.setattr("mlwarden.service.mfa.now", fake)
    return fake


from tests.service.data_kit import data_team  # noqa: F401,E402  (a fixture, shared with the dataset tests)
