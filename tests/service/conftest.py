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
