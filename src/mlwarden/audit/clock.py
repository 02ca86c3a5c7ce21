"""UTC timestamps in the one format the audit log uses (ISO 8601, microseconds, 'Z')."""

from __future__ import annotations

from datetime import UTC, datetime

from mlwarden.errors import UsageError

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_ts(text: str) -> str:
    """Accept any ISO 8601 date or date-time (naive means UTC) and return the log's format."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"not an ISO 8601 date or time: {text!r}", hint="e.g. 2026-11-26 or 2026-11-26T09:30Z"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_ts(moment)
