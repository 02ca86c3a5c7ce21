"""The registry tests use the service tests' people and clock."""

from tests.service.conftest import clock  # noqa: F401 - fixtures
from tests.service.data_kit import data_team  # noqa: F401
