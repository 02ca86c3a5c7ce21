"""The rows behind TOTP factors and step-ups, and the atomic updates replay protection rests on.

``claim_step`` and ``consume_step_up`` are single compare-and-set UPDATEs: whichever transactions race
(threads, processes, servers sharing PostgreSQL), a time step is accepted and a grant used at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from mlwarden.audit.clock import format_ts
from mlwarden.domain.events import UserId
from mlwarden.errors import UsageError
from mlwarden.store.tables import mfa_factors, mfa_step_ups

MAX_FAILURES = 5
LOCK_FIRST = timedelta(seconds=30)
LOCK_MAX = timedelta(hours=1)
NO_STEP = -1  # last_step of a factor that has accepted no code yet


@dataclass(frozen=True)
class Factor:
    user_id: UserId
    sealed: str
    enrolled_at: str
    confirmed: bool
    last_step: int
    failures: int
    locked_until: str | None


def lock_duration(failures: int) -> timedelta | None:
    """How long ``failures`` consecutive refused codes lock a factor: none below MAX_FAILURES, then 30 s,
    doubling with each further failure, at most an hour."""
    if failures < MAX_FAILURES:
        return None
    return min(LOCK_FIRST * (1 << min(failures - MAX_FAILURES, 16)), LOCK_MAX)


def claim_step(conn: Connection, user_id: str, step: int) -> bool:
    """Accept time step ``step`` for ``user_id`` unless it (or a later one) was accepted already.

    The atomic compare-and-set that makes each code single-use, whatever processes race for it.
    """
    result = conn.execute(
        update(mfa_factors)
        .where(mfa_factors.c.user_id == user_id, mfa_factors.c.last_step < step)
        .values(last_step=step, failures=0, locked_until=None)
    )
    return result.rowcount == 1


def consume_step_up(conn: Connection, user_id: str, action: str, resource_key: str, now: datetime) -> bool:
    """Use up one step-up grant of ``user_id`` for exactly ``action`` on ``resource_key``, if there is an
    unused one expiring after ``now``. Call inside the change's write transaction: if the change rolls
    back, so does the use.

    One UPDATE picks and marks a single grant; ``used_at IS NULL`` is checked again on the row it updates,
    so two transactions can never both use the same grant.
    """
    ts = format_ts(now)
    candidate = (
        select(mfa_step_ups.c.id)
        .where(
            mfa_step_ups.c.user_id == user_id,
            mfa_step_ups.c.action == str(action),
            mfa_step_ups.c.resource_key == resource_key,
            mfa_step_ups.c.used_at.is_(None),
            mfa_step_ups.c.expires_at > ts,
        )
        .order_by(mfa_step_ups.c.expires_at)
        .limit(1)
        .scalar_subquery()
    )
    result = conn.execute(
        update(mfa_step_ups).where(mfa_step_ups.c.id == candidate, mfa_step_ups.c.used_at.is_(None)).values(used_at=ts)
    )
    return result.rowcount == 1


def load_factor(conn: Connection, user_id: str) -> Factor | None:
    row = conn.execute(select(mfa_factors).where(mfa_factors.c.user_id == user_id)).mappings().first()
    if row is None:
        return None
    return Factor(
        user_id=UserId(row["user_id"]),
        sealed=row["secret_sealed"],
        enrolled_at=row["enrolled_at"],
        confirmed=bool(row["confirmed"]),
        last_step=int(row["last_step"]),
        failures=int(row["failures"]),
        locked_until=row["locked_until"],
    )


def require_factor(conn: Connection, user_id: str, name: str) -> Factor:
    factor = load_factor(conn, user_id)
    if factor is None:
        raise UsageError(f"{name} has no authenticator enrolled", hint="enroll one with `mlwarden mfa enroll`")
    return factor


def count_failure(conn: Connection, user_id: str, now: datetime) -> tuple[int | None, str | None]:
    """Count one refused code; lock the factor once there are MAX_FAILURES in a row.

    Returns (the count, or None when the factor is gone; the end of the lock it started, or None).
    """
    conn.execute(
        update(mfa_factors).where(mfa_factors.c.user_id == user_id).values(failures=mfa_factors.c.failures + 1)
    )
    failures = conn.execute(select(mfa_factors.c.failures).where(mfa_factors.c.user_id == user_id)).scalar_one_or_none()
    if failures is None:
        return None, None
    lock = lock_duration(int(failures))
    if lock is None:
        return int(failures), None
    until = format_ts(now + lock)
    conn.execute(update(mfa_factors).where(mfa_factors.c.user_id == user_id).values(locked_until=until))
    return int(failures), until


def remove_factor(conn: Connection, user_id: str, now: datetime) -> int:
    """Delete a factor and end its open step-up grants (they expire now; used ones stay as they were).
    Returns how many grants were ended."""
    ts = format_ts(now)
    conn.execute(delete(mfa_factors).where(mfa_factors.c.user_id == user_id))
    return conn.execute(
        update(mfa_step_ups)
        .where(mfa_step_ups.c.user_id == user_id, mfa_step_ups.c.used_at.is_(None), mfa_step_ups.c.expires_at > ts)
        .values(expires_at=ts)
    ).rowcount
