"""TOTP multi-factor authentication: enroll, verify, step up, status, disable (DESIGN invariant 5).

* **Replay.** Each time step is accepted at most once per user: a code is claimed with one atomic
  compare-and-set, ``UPDATE mfa_factors SET last_step = :step ... WHERE user_id = :u AND last_step < :step``,
  and only the request whose UPDATE changed the row wins. So the same code twice, a code of an earlier
  step than the last accepted one, or one code sent by two processes at once: exactly one succeeds.
* **Lockout.** Every refused code counts (wrong, replayed, or too old). After ``MAX_FAILURES`` in a row
  the factor is locked for 30 s, and each further failure locks it for twice as long as the one before,
  up to an hour; a valid code resets the count. While locked, every attempt is refused without looking
  at the code (and does not count again). Counting happens in a write transaction of its own, since
  the refused attempt's transaction is rolled back; then the denial is audited with its reason.
* **Step-up.** A fresh code for one action on one resource key records a grant, valid
  ``STEP_UP_TTL`` and used at most once; the authorizer consumes it with ``consume_step_up`` inside the
  change's own transaction (so a change that fails leaves its grant unused). The resource key is an
  opaque string the authorizer defines (``mlwarden.access.policy.step_up_key``); a grant counts only for
  exactly the action and key it was made for.
* **Secrets** are sealed at rest (``mlwarden.identity.sealing``) and never appear in an event, an error
  or a log line; nor do codes. The ``mfa.enroll`` event records the SHA-256 of the sealed secret
  (``digest_after``) and ``mfa.disable`` the one it removed (``digest_before``), for reconciliation.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, func, insert, select, update

from mlwarden.access.policy import step_up_key
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource, UserId
from mlwarden.errors import AuthenticationError, IntegrityError, MlwardenError, UsageError
from mlwarden.identity import totp
from mlwarden.identity.sealing import KEY_FILE, Sealer, load_sealer
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, mutation
from mlwarden.service.mfa_store import (
    LOCK_FIRST,
    LOCK_MAX,
    MAX_FAILURES,
    NO_STEP,
    Factor,
    claim_step,
    consume_step_up,
    count_failure,
    load_factor,
    lock_duration,
    remove_factor,
    require_factor,
)
from mlwarden.service.users import credential_digest, find_user
from mlwarden.store.tables import mfa_factors, mfa_step_ups

# consume_step_up is the authorizer's entry point; the lock constants are part of the documented behaviour.
__all__ = [
    "LOCK_FIRST",
    "LOCK_MAX",
    "MAX_FAILURES",
    "STEP_UP_TTL",
    "Enrollment",
    "MfaService",
    "MfaStatus",
    "StepUpGrant",
    "consume_step_up",
    "lock_duration",
    "now",
]

T = TypeVar("T")
Clock = Callable[[], datetime]

STEP_UP_TTL = timedelta(minutes=5)
MAX_RESOURCE_KEY = 4096
SEAL_PURPOSE = "mfa.totp"
_REJECTED = "the code was not accepted"
_REJECTED_HINT = "type the code your authenticator shows now; each code works only once"


@dataclass(frozen=True)
class Enrollment:
    """A new, unconfirmed factor. ``secret`` and ``uri`` (which holds it) are shown once, stored sealed."""

    user: str
    account: str
    issuer: str
    algorithm: str
    digits: int
    period: int
    replaced: bool  # an unconfirmed factor was replaced
    uri: str = field(repr=False)
    secret: str = field(repr=False)  # base32, for typing into an app by hand


@dataclass(frozen=True)
class StepUpGrant:
    id: str
    user: str
    action: str
    resource_key: str
    granted_at: str
    expires_at: str


@dataclass(frozen=True)
class MfaStatus:
    user: str
    enrolled: bool
    confirmed: bool
    enrolled_at: str | None
    failures: int
    locked_until: str | None  # only while the lock lasts
    step_ups_open: int  # unused, unexpired step-up grants


class _Refused(Exception):
    """A code check that refused; the caller audits ``reason`` and raises ``error_type(message)``."""

    def __init__(self, reason: str, *, counted: bool, message: str = _REJECTED, hint: str = _REJECTED_HINT) -> None:
        super().__init__(reason)
        self.reason, self.counted, self.message, self.hint = reason, counted, message, hint
        self.error_type: type[MlwardenError] = AuthenticationError


class MfaService:
    """TOTP factors of users. ``clock`` gives the current UTC time (injectable for tests)."""

    def __init__(self, ctx: ServiceContext, *, clock: Clock | None = None) -> None:
        self._ctx = ctx
        self._clock = clock or _system_clock
        self._sealer_cache: Sealer | None = None

    @mutation
    def enroll(self, *, user: str | None = None) -> Enrollment:
        """Enroll a new authenticator for yourself (only yourself: naming anyone else is refused and
        audited). An unconfirmed factor is replaced; a confirmed one must be disabled first."""
        name = self._subject(user)
        now = self._clock()

        def apply(conn: Connection) -> Applied[Enrollment]:
            owner = find_user(conn, name)
            existing = load_factor(conn, owner.id)
            if existing is not None and existing.confirmed:
                raise UsageError(
                    f"{name} has a confirmed authenticator already",
                    hint="disable it first with `mlwarden mfa disable --code CODE`, then enroll again",
                )
            secret = totp.new_secret()
            sealed = self._sealer(create=True).seal(secret, purpose=SEAL_PURPOSE, subject=owner.id)
            values: dict[str, Any] = {
                "secret_sealed": sealed,
                "enrolled_at": format_ts(now),
                "confirmed": False,
                "last_step": NO_STEP,
                "failures": 0,
                "locked_until": None,
            }
            if existing is None:
                conn.execute(insert(mfa_factors).values(user_id=owner.id, **values))
            else:
                conn.execute(update(mfa_factors).where(mfa_factors.c.user_id == owner.id).values(**values))
            account = f"{name}@{self._ctx.config.origin}"
            enrollment = Enrollment(
                user=name,
                account=account,
                issuer=totp.ISSUER,
                algorithm=totp.DIGEST.upper(),
                digits=totp.DIGITS,
                period=totp.STEP_SECONDS,
                replaced=existing is not None,
                uri=totp.provisioning_uri(secret, account),
                secret=totp.secret_base32(secret),
            )
            return Applied(
                enrollment,
                digest_before=credential_digest(existing.sealed) if existing is not None else None,
                digest_after=credential_digest(sealed),
                details={"replaced": existing is not None},
            )

        return self._ctx.door.run(self._ctx.actor, Action.MFA_ENROLL, self._target(name), apply)

    @mutation
    def verify(self, code: str, *, user: str | None = None) -> None:
        """Check a current code of your own factor; the first one accepted confirms the enrollment."""

        def then(conn: Connection, factor: Factor, step: int, _now: datetime) -> Applied[None]:
            if not factor.confirmed:
                conn.execute(update(mfa_factors).where(mfa_factors.c.user_id == factor.user_id).values(confirmed=True))
            return Applied(None, details={"step": step, "confirmed_enrollment": not factor.confirmed})

        self._with_code(Action.MFA_VERIFY, self._subject(user), code, then, confirmed_only=False)

    @mutation
    def step_up(self, code: str, action: str, resource_key: str, *, user: str | None = None) -> StepUpGrant:
        """Prove presence with a fresh code for one ``action`` on one ``resource_key``: a grant valid for
        STEP_UP_TTL that one change of exactly that action and key can consume, once."""
        try:
            action = Action(action).value
        except ValueError:
            raise UsageError(f"unknown action {action[:80]!r}", hint="name an action such as role.grant") from None
        if not resource_key or len(resource_key) > MAX_RESOURCE_KEY:
            raise UsageError(f"a step-up resource key must have 1-{MAX_RESOURCE_KEY} characters")
        name = self._subject(user)

        def then(conn: Connection, factor: Factor, step: int, now: datetime) -> Applied[StepUpGrant]:
            grant = StepUpGrant(
                id="stp_" + secrets.token_hex(8),
                user=name,
                action=action,
                resource_key=resource_key,
                granted_at=format_ts(now),
                expires_at=format_ts(now + STEP_UP_TTL),
            )
            conn.execute(
                insert(mfa_step_ups).values(
                    id=grant.id,
                    user_id=factor.user_id,
                    action=grant.action,
                    resource_key=grant.resource_key,
                    granted_at=grant.granted_at,
                    expires_at=grant.expires_at,
                    used_at=None,
                )
            )
            details: dict[str, DetailValue] = {
                "step": step,
                "grant": grant.id,
                "for_action": action,
                "for_resource": resource_key,
                "expires_at": grant.expires_at,
            }
            return Applied(grant, details=details)

        return self._with_code(Action.MFA_STEP_UP, name, code, then, confirmed_only=True)

    def status(self, user: str | None = None) -> MfaStatus:
        """Whether a user (yourself by default; anyone as an admin) has a factor, and its lock state."""
        name = self._subject(user)
        now = format_ts(self._clock())

        def fetch(conn: Connection) -> MfaStatus:
            owner = find_user(conn, name)
            factor = load_factor(conn, owner.id)
            open_grants = conn.execute(
                select(func.count())
                .select_from(mfa_step_ups)
                .where(
                    mfa_step_ups.c.user_id == owner.id,
                    mfa_step_ups.c.used_at.is_(None),
                    mfa_step_ups.c.expires_at > now,
                )
            ).scalar_one()
            locked = factor is not None and factor.locked_until is not None and factor.locked_until > now
            return MfaStatus(
                user=name,
                enrolled=factor is not None,
                confirmed=factor is not None and factor.confirmed,
                enrolled_at=factor.enrolled_at if factor is not None else None,
                failures=factor.failures if factor is not None else 0,
                locked_until=factor.locked_until if locked and factor is not None else None,
                step_ups_open=int(open_grants),
            )

        return self._ctx.door.read(self._ctx.actor, Action.MFA_STATUS, self._target(name), fetch)

    @mutation
    def disable(self, user: str | None = None, code: str | None = None) -> None:
        """Remove a factor and revoke its open step-up grants. Your own needs a current code (a stolen
        token alone must not remove the second factor); an admin resets anyone else's with a step-up:
        ``code`` is then the admin's own current code."""
        actor = self._ctx.actor
        name = self._subject(user)
        if actor.user_id is not None and name == actor.name:
            if code is None:
                reason = "disabling your own factor needs a current code; none was given"
                self._ctx.door.record_denial(actor, Action.MFA_DISABLE, Resource("mfa", name), reason)
                raise AuthenticationError(reason, hint="add --code with the code your authenticator shows now")

            def then(conn: Connection, factor: Factor, step: int, now: datetime) -> Applied[None]:
                return _removed(conn, factor, now, details={"step": step, "reset_by_admin": False})

            self._with_code(Action.MFA_DISABLE, name, code, then, confirmed_only=False)
            return
        if code is not None:  # the admin's own code: a step-up for exactly this reset
            self.step_up(code, Action.MFA_DISABLE.value, step_up_key(Resource("mfa", name)))
        now = self._clock()

        def apply(conn: Connection) -> Applied[None]:
            factor = require_factor(conn, find_user(conn, name).id, name)
            return _removed(conn, factor, now, details={"reset_by_admin": True})

        self._ctx.door.run(actor, Action.MFA_DISABLE, self._target(name), apply)

    # -- the code check shared by verify, step_up and disable -----------------------------------------------

    def _with_code(
        self,
        action: Action,
        name: str,
        code: str,
        then: Callable[[Connection, Factor, int, datetime], Applied[T]],
        *,
        confirmed_only: bool,
    ) -> T:
        totp.validate_code(code)
        now = self._clock()
        subject: list[UserId] = []

        def apply(conn: Connection) -> Applied[T]:
            factor = require_factor(conn, find_user(conn, name).id, name)
            subject.append(factor.user_id)
            if confirmed_only and not factor.confirmed:
                raise UsageError(
                    f"{name}'s authenticator is not confirmed yet", hint="confirm it with `mlwarden mfa verify CODE`"
                )
            step = self._accept(conn, factor, code, now)
            return then(conn, factor, step, now)

        try:
            return self._ctx.door.run(self._ctx.actor, action, self._target(name), apply)
        except _Refused as refused:
            note = self._count_failure(subject[0], now) if refused.counted and subject else ""
            resource = Resource("mfa", name)
            self._ctx.door.record_denial(self._ctx.actor, action, resource, refused.reason + note)
            raise refused.error_type(refused.message + note, hint=refused.hint) from None

    def _accept(self, conn: Connection, factor: Factor, code: str, now: datetime) -> int:
        """The time step ``code`` is for, claimed for good; or ``_Refused``."""
        if factor.locked_until is not None and factor.locked_until > format_ts(now):
            message = f"too many refused codes: locked until {factor.locked_until}"
            hint = "wait until then and use a new code, or ask an admin to reset your factor"
            raise _Refused(
                f"locked until {factor.locked_until} after {factor.failures} refused codes (code not checked)",
                counted=False,
                message=message,
                hint=hint,
            )
        try:
            secret = self._sealer().open(factor.sealed, purpose=SEAL_PURPOSE, subject=factor.user_id)
        except IntegrityError as exc:
            refused = _Refused(exc.message, counted=False, message=exc.message, hint=exc.hint)
            refused.error_type = IntegrityError
            raise refused from None
        step = totp.match_step(secret, code, now.timestamp())
        if step is None:
            raise _Refused("wrong code", counted=True)
        if step <= factor.last_step or not claim_step(conn, factor.user_id, step):
            raise _Refused("replayed code: its time step (or a later one) was accepted already", counted=True)
        return step

    def _count_failure(self, user_id: UserId, now: datetime) -> str:
        """Count a refused code in its own transaction (the attempt's own was rolled back), then say what
        the denial should add about it."""
        with self._ctx.db.write() as conn:
            failures, until = count_failure(conn, user_id, now)
        if failures is None:
            return ""  # the factor was removed meanwhile
        if until is None:
            return f" ({failures} of {MAX_FAILURES} refused codes before a lock)"
        return f" ({failures} refused codes in a row: locked until {until})"

    # -- helpers ---------------------------------------------------------------------------------------------

    def _subject(self, user: str | None) -> str:
        return user if user is not None else self._ctx.actor.name

    def _target(self, name: str) -> Callable[[Connection], Resource]:
        """The user's factor as the door sees it: owned by that user, so Rule.SELF can apply."""

        def resolve(conn: Connection) -> Resource:
            return Resource(type="mfa", id=name, owner=find_user(conn, name).id)

        return resolve

    def _sealer(self, *, create: bool = False) -> Sealer:
        if self._sealer_cache is None:
            self._sealer_cache = load_sealer(self._ctx.paths.resolve(KEY_FILE), create=create)
        return self._sealer_cache


def _removed(conn: Connection, factor: Factor, now: datetime, *, details: dict[str, DetailValue]) -> Applied[None]:
    revoked = remove_factor(conn, factor.user_id, now)
    return Applied(None, digest_before=credential_digest(factor.sealed), details={**details, "grants_revoked": revoked})


def now() -> datetime:
    """The current UTC time as the MFA code paths see it: the default clock of every ``MfaService``,
    looked up at each call (so tests can replace this one function)."""
    return utcnow()


def _system_clock() -> datetime:
    return now()
