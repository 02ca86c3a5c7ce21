"""Canonical encoding of audit events (format v1, specified in docs/audit.md).

The leaf hash of an event is ``merkle.leaf_hash(encode(event))``. The encoding is JSON with sorted keys,
no insignificant white space, UTF-8 without ASCII escaping, and no floats: one event has exactly one
encoding, so anyone can recompute a leaf from the event and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from mlwarden.domain.events import AuditEvent, AuditRecord, AuthMethod, DetailValue, Outcome, Resource
from mlwarden.errors import IntegrityError, UsageError

FORMAT_VERSION = 1
MAX_EVENT_BYTES = 1 << 20
FIELDS = frozenset(
    {
        "v", "seq", "ts", "actor", "auth", "credential", "action", "resource_type", "resource_id", "project",
        "outcome", "reason", "digest_before", "digest_after", "request_id", "client", "details",
    }
)  # fmt: skip


def encode(event: AuditEvent) -> bytes:
    """The canonical bytes of an event; raises UsageError for content that cannot be encoded."""
    rec = event.record
    _check_details(rec.details)
    doc: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "seq": event.seq,
        "ts": event.ts,
        "actor": rec.actor,
        "auth": rec.auth_method.value,
        "credential": rec.credential,
        "action": rec.action,
        "resource_type": rec.resource.type,
        "resource_id": rec.resource.id,
        "project": rec.resource.project,
        "outcome": rec.outcome.value,
        "reason": rec.reason,
        "digest_before": rec.digest_before,
        "digest_after": rec.digest_after,
        "request_id": rec.request_id,
        "client": rec.client,
        "details": rec.details,
    }
    try:
        data = canonical_json(doc)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise UsageError(f"audit event cannot be encoded: {exc}") from exc
    if len(data) > MAX_EVENT_BYTES:
        raise UsageError(f"audit event is {len(data)} bytes, over the {MAX_EVENT_BYTES}-byte limit")
    return data


def canonical_json(doc: dict[str, Any]) -> bytes:
    """The one JSON spelling of a document: sorted keys, no white space, UTF-8, no NaN."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def decode(body: bytes) -> AuditEvent:
    """Parse canonical bytes back into an event; raises IntegrityError if they are not canonical."""
    try:
        doc = json.loads(body.decode("utf-8"))
        event = _from_doc(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"audit event body is not a valid v{FORMAT_VERSION} event: {exc}") from exc
    if encode(event) != body:
        raise IntegrityError("audit event body is not in canonical form")
    return event


def _from_doc(doc: dict[str, Any]) -> AuditEvent:
    if not isinstance(doc, dict) or set(doc) != FIELDS:
        raise ValueError(f"the fields must be exactly {sorted(FIELDS)}")
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown format version {doc.get('v')!r}")
    record = AuditRecord(
        actor=doc["actor"],
        auth_method=AuthMethod(doc["auth"]),
        credential=doc["credential"],
        action=doc["action"],
        resource=Resource(type=doc["resource_type"], id=doc["resource_id"], project=doc["project"]),
        outcome=Outcome(doc["outcome"]),
        reason=doc["reason"],
        digest_before=doc["digest_before"],
        digest_after=doc["digest_after"],
        request_id=doc["request_id"],
        client=doc["client"],
        details=dict(doc["details"]),
    )
    return AuditEvent(seq=doc["seq"], ts=doc["ts"], record=record)


def _check_details(details: dict[str, DetailValue]) -> None:
    for key, value in details.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str | int | bool)):
            raise UsageError(f"audit detail {key!r} must map a string to str, int, bool or None")
