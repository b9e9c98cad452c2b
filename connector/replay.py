"""Replays: run the sync of past or failed records again, one record or a filtered set.

A replay starts a new trip (new sync ids, audited "received" with ``source: replay``) and then goes
the way a webhook goes: fetch from Xero, then push to Zoho, where the content hashes on the id links
skip anything Zoho already holds. So replaying a record that already succeeded writes nothing to
Zoho. ``source="snapshot"`` skips the fetch and pushes the stored snapshot (records without one are
fetched). Webhooks of a tenant that was not connected yet were audited without a connection; once the
tenant is connected they are listed with its failures and replayed under it. A failure is listed until
a later sync of the record succeeds.

This module decides *what* to replay; workers/ runs it (as tasks, or in-process for the CLI).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connector.errors import InvalidArgument
from connector.pipeline.common import RECORD_TYPES, new_sync_id
from connector.store import audit as stages
from connector.store.audit import error_class

SOURCES = ("xero", "snapshot")
RECORD_CHOICES = "contact(s), invoice(s), credit-note(s) / creditnote(s), payment(s)"
_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def resource_of(record: Any) -> str:
    """The resource name ("contacts", ...) for any usual spelling: singular or plural, any case,
    with or without a dash or underscore ("credit-notes", "CreditNote")."""
    if isinstance(record, str):
        key = re.sub(r"[\s_-]", "", record).lower()
        for resource, record_type in RECORD_TYPES.items():
            if key in (resource, record_type):
                return resource
    raise InvalidArgument(f"record must be one of {RECORD_CHOICES}; got {record!r}")


def parse_since(text: Any, *, now: datetime) -> datetime:
    """"24h", "90m", "7d", "2w" before ``now``, or an ISO date / date-time (UTC when no zone is given)."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    value = str(text or "").strip()
    relative = _RELATIVE.match(value)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2).lower()]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"since must be a duration like 24h, 90m, 7d or an ISO date like 2026-11-01; got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def connection_id_of(value: Any, store) -> int:
    """A connection that exists, from an int or a numeric string."""
    try:
        connection_id = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"connection must be a connection number (see `connector connections`); got {value!r}") \
            from None
    if store.connections.get(connection_id) is None:
        raise InvalidArgument(f"there is no connection #{connection_id}; see `connector connections`")
    return connection_id


def ids_of(value: Any) -> list[str]:
    """Xero ids from a list (or one comma-separated string), duplicates dropped, order kept."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidArgument(f"ids must be a non-empty list of Xero ids; got {value!r}")
    ids = [str(v).strip() for v in value if str(v).strip()]
    if not ids:
        raise InvalidArgument(f"ids must be a non-empty list of Xero ids; got {value!r}")
    return list(dict.fromkeys(ids))


def source_of(value: Any) -> str:
    if value not in SOURCES:
        raise InvalidArgument(f"source must be one of {', '.join(SOURCES)}; got {value!r}")
    return value


@dataclass(frozen=True)
class ReplayRequest:
    connection_id: int
    resource: str
    ids: list[str]
    source: str = "xero"
    # ids audited without a connection (their tenant was not connected yet) → replayed under this one
    unattached: frozenset[str] = field(default_factory=frozenset)


def replay_request(store, *, connection: Any, record: Any, ids: Any, source: Any = "xero") -> ReplayRequest:
    """Validate the arguments of one replay; InvalidArgument says what is wrong."""
    return ReplayRequest(connection_id_of(connection, store), resource_of(record), ids_of(ids), source_of(source))


@dataclass(frozen=True)
class Failure:
    connection_id: int | None
    record_type: str
    record_id: str
    error: str
    reason: str
    attempts: int
    failed_at: datetime
    sync_id: str
    task_id: str | None
    direction: str
    tenant_id: str | None

    @property
    def replayable(self) -> bool:
        return self.direction == stages.XERO_TO_ZOHO and self.record_type in RECORD_TYPES.values()

    def as_dict(self) -> dict:
        return {
            "connection": self.connection_id, "record_type": self.record_type, "record_id": self.record_id,
            "error": self.error, "reason": self.reason, "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat(), "sync_id": self.sync_id, "task_id": self.task_id,
            "direction": self.direction, "tenant_id": self.tenant_id, "replayable": self.replayable,
        }


def list_failures(store, *, connection_id: int | None = None, since: datetime | None = None,
                  record: str | None = None, error: str | None = None, limit: int = 1000) -> list[Failure]:
    """Records still failing (``AuditLog.failures``), newest first; with a connection, also the webhooks
    of its tenant that arrived before it was connected."""
    record_type = RECORD_TYPES[resource_of(record)] if record else None
    audit = store.audit
    entries = audit.failures(connection_id, limit, since=since, record_type=record_type, error=error)
    attempts = audit.attempts(entries)
    return [
        Failure(
            connection_id=e.connection_id, record_type=e.record_type, record_id=e.record_id,
            error=error_class(e.detail), reason=str((e.detail or {}).get("reason", "")),
            # A batch split until the record was alone fails once, on its last of several tries.
            attempts=max(attempts.get((e.connection_id, e.record_type, e.record_id), 1),
                         int((e.detail or {}).get("attempts") or 1)),
            failed_at=e.created_at,
            sync_id=e.sync_id, task_id=e.task_id, direction=e.direction,
            tenant_id=(e.detail or {}).get("tenant_id"),
        )
        for e in entries
    ]


def failed_replays(store, *, connection_id: int | None, since: datetime | None = None, record: str | None = None,
                   error: str | None = None, source: str = "xero", limit: int = 1000) -> list[ReplayRequest]:
    """One request per (connection, resource) covering the replayable failures that match."""
    return replays_of(store, list_failures(store, connection_id=connection_id, since=since, record=record,
                                           error=error, limit=limit), source=source)


def replays_of(store, failures: Iterable[Failure], *, source: str = "xero") -> list[ReplayRequest]:
    """One request per (connection, resource) covering the replayable ones of ``failures``.

    A failure without a connection is replayed only when a connection now has its tenant."""
    source = source_of(source)
    grouped: dict[tuple[int, str], dict[str, bool]] = {}
    for failure in failures:
        if not failure.replayable:
            continue
        target = failure.connection_id
        if target is None:
            connection = store.connections.by_tenant(failure.tenant_id or "")
            if connection is None:
                continue
            target = connection.id
        resource = resource_of(failure.record_type)
        grouped.setdefault((target, resource), {})[failure.record_id] = failure.connection_id is None
    return [
        ReplayRequest(cid, resource, list(ids), source, frozenset(i for i, unattached in ids.items() if unattached))
        for (cid, resource), ids in sorted(grouped.items())
    ]


def dismiss(store, failures: Iterable[Failure], *, reason: str, by: str) -> int:
    """Set failures aside: each gets a "dismissed" stage in its record's trail, on the failed trip, saying
    why and who (``by``: "console", "cli"); it leaves the failures list (and `connector failures`, the
    console, the counts of `connector status`) until the record fails again. Returns how many."""
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise InvalidArgument("a dismissal needs a reason (it is kept in the record's audit trail)")
    failures = list(failures)
    store.audit.record_many([
        {"connection_id": f.connection_id, "record_type": f.record_type, "record_id": f.record_id,
         "sync_id": f.sync_id, "stage": stages.DISMISSED, "direction": f.direction,
         "detail": {"reason": reason, "by": by, "failed_with": f.error}}
        for f in failures])
    return len(failures)


def start_replay(request: ReplayRequest, *, audit, task_id: str | None = None) -> dict[str, str]:
    """Open a new trip per record: audited "received" (source replay); returns id → sync id."""
    record_type = RECORD_TYPES[request.resource]
    sync_ids = {xero_id: new_sync_id() for xero_id in request.ids}
    for xero_id, sync_id in sync_ids.items():
        if xero_id in request.unattached:
            # The trail of the record audited without a connection says where its replay went.
            audit.record(connection_id=None, record_type=record_type, record_id=xero_id, sync_id=sync_id,
                         stage=stages.RECEIVED, task_id=task_id,
                         detail={"source": "replay", "replayed_under_connection": request.connection_id})
        audit.record(connection_id=request.connection_id, record_type=record_type, record_id=xero_id,
                     sync_id=sync_id, stage=stages.RECEIVED, task_id=task_id,
                     detail={"source": "replay", "from": request.source})
    return sync_ids


def needing_fetch(request: ReplayRequest, snapshots) -> list[str]:
    """The ids a replay must fetch from Xero: all of them, or those with no stored snapshot."""
    if request.source == "xero":
        return list(request.ids)
    return [i for i in request.ids if snapshots.get(request.connection_id, request.resource, i) is None]


@dataclass
class ReplayOutcome:
    """What an in-process replay did, per record."""

    resource: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id → reason

    @classmethod
    def of(cls, resource: str, ids: Iterable[str], batch) -> "ReplayOutcome":
        outcome = cls(resource, list(batch.written), list(batch.skipped))
        for xero_id in ids:
            if xero_id in batch.failed:
                outcome.failed[xero_id] = str(batch.failed[xero_id].get("reason", "failed"))
            elif xero_id not in outcome.written and xero_id not in outcome.skipped:
                outcome.failed.setdefault(xero_id, "not found in Xero, or no snapshot to push")
        return outcome
