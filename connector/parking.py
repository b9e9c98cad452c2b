"""Parking: work that waits in the database and is re-driven later. The one module of the mechanism.

Work is parked for one of two kinds of wait:

- until a person (re)connects: a lost grant (NEEDS_REAUTH) or Zoho's first connect
  (ZOHO_NOT_CONNECTED); no ``resume_after``, it resumes once the connection is active (and has
  Zoho) again;
- for a while: a limit whose reset is further off than a broker countdown may wait (DAILY_BUDGET,
  RATE_LIMITED), or an outage past the short retries (OUTAGE, waits ``park_backoff``, growing with
  each further failure).

``resume_parked_work`` re-drives whatever is due: first the webhook ids held for organisations not
connected until now join the parked work, then each connection's due records are handed, in
``ParkedBatch`` chunks, to an ``enqueue`` callback, which turns a batch into a task message
(workers/maintenance_tasks.py ``enqueue_parked``, the only Celery-specific part). The rows
themselves live in ``ParkedWorkStore`` (connector/store/parked.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from connector.backoff import backoff_delay
from connector.clock import Clock
from connector.pipeline.common import RECORD_TYPES
from connector.store import audit as stages
from connector.store.parked import (
    DAILY_BUDGET,
    FETCH,
    NEEDS_REAUTH,
    NOTIFY,
    OUTAGE,
    PUSH,
    ZOHO_NOT_CONNECTED,
    ZOHO_RESOURCE_PREFIX,
)

log = logging.getLogger(__name__)

# Waits of parked work after each further failure: minutes first, then hours, never more than six
# (about 5 min, 18 min, 1 h, 3.5 h, then 6 h each time).
PARK_BACKOFF_BASE = 300.0
PARK_BACKOFF_GROWTH = 3.5
PARK_BACKOFF_CAP = 6 * 3600.0

# Per re-driven task: one IDs= call (Xero, ≤50 ids) or one upsert (Zoho, ≤100 records).
RESUME_CHUNK = {FETCH: 50, PUSH: 100, NOTIFY: 100}

_RESOURCE_OF_RECORD_TYPE = {kind: name for name, kind in RECORD_TYPES.items()}


def park_backoff(attempts: int) -> float:
    """How long parked work waits after its ``attempts``-th wait in the database ended in failure again."""
    return backoff_delay(attempts, base=PARK_BACKOFF_BASE, cap=PARK_BACKOFF_CAP, growth=PARK_BACKOFF_GROWTH,
                         jitter=(0.9, 1.1))


@dataclass(frozen=True)
class Redrive:
    """How to pick a task's work up again from the database: which stage, for which resource."""

    stage: str  # FETCH, PUSH or NOTIFY (connector.store.parked)
    resource: str  # a Xero resource ("invoices"), or "zoho:<Module>" for NOTIFY
    priority: int = 0
    attempts: int = 0  # waits in the database so far


def zoho_resource(module: str) -> str:
    """The parked resource of a Zoho module's notifications (NOTIFY work)."""
    return f"{ZOHO_RESOURCE_PREFIX}{module}"


class Parking:
    """Parks records and audits them as parked, on behalf of ``by`` (a task's name, for its log line);
    ``direction`` and ``task_id`` go on the audit rows."""

    def __init__(self, parked, audit, clock: Clock, *, by: str = "", direction: str = stages.XERO_TO_ZOHO,
                 task_id: str | None = None) -> None:
        self._parked = parked
        self._audit = audit
        self._clock = clock
        self._by = by
        self._direction = direction
        self._task_id = task_id

    @classmethod
    def of(cls, store, **who) -> "Parking":
        return cls(store.parked, store.audit, store.clock, **who)

    def park(self, *, connection_id: int | None, record_type: str, record_ids: list[str],
             sync_ids: dict | None = None, reason: str, redrive: Redrive | None = None,
             wait: float | None = None, error: Exception | None = None, detail: dict | None = None
             ) -> datetime | None:
        """Park records, audited as parked; returns when they resume (None: at the (re)connect).

        Without ``wait`` they wait for a person's (re)connect: after a lost grant Xero records are
        fetched afresh; work waiting only for Zoho's first connect keeps its stage (a push sends the
        stored snapshot); Zoho notifications are taken in again. With ``wait`` (seconds) they go back
        to ``redrive``'s stage then, one more wait counted for an outage. The audit detail is
        ``detail``, by default the reason (and ``error``), plus when they resume.
        """
        if wait is None:
            resume_after = None
            self._park_until_reconnected(connection_id, record_type, record_ids, sync_ids, redrive, reason)
        else:
            resume_after = self._clock.now() + timedelta(seconds=wait)
            self._parked.park(connection_id, redrive.resource, list(record_ids), reason=reason,
                              resume_after=resume_after, priority=redrive.priority, sync_ids=sync_ids,
                              stage=redrive.stage, attempts=redrive.attempts + (reason == OUTAGE))
        if detail is None:
            detail = {"reason": reason} if error is None else {"reason": reason, "error": str(error)}
        if resume_after is not None:
            detail = {**detail, "resume_after": resume_after.isoformat()}
        self.audit_parked(connection_id=connection_id, record_type=record_type, record_ids=record_ids,
                          sync_ids=sync_ids, detail=detail)
        if resume_after is not None and error is not None:
            log.warning("%s: parked %d %s of connection %s until %s (%s): %s", self._by, len(record_ids),
                        record_type, connection_id, resume_after.isoformat(timespec="seconds"), reason, error)
        return resume_after

    def _park_until_reconnected(self, connection_id: int | None, record_type: str, record_ids: list[str],
                                sync_ids: dict | None, redrive: Redrive | None, reason: str) -> None:
        if redrive is not None and (redrive.stage == NOTIFY or reason == ZOHO_NOT_CONNECTED):
            resource, stage = redrive.resource, redrive.stage
        else:
            resource, stage = _RESOURCE_OF_RECORD_TYPE.get(record_type), FETCH
        if connection_id is not None and resource and record_ids:
            self._parked.park(connection_id, resource, list(record_ids), reason=reason, sync_ids=sync_ids,
                              stage=stage, priority=redrive.priority if redrive else 0)

    def audit_parked(self, *, connection_id: int | None, record_type: str, record_ids: list[str],
                     sync_ids: dict | None, detail: dict) -> None:
        """The "parked" audit rows of these records, one transaction for them all (nothing stored: for
        work that cannot wait, such as a missing connection's, the row says why it stopped)."""
        trail = self._audit.batch()
        for record_id in record_ids:
            trail.record(connection_id=connection_id, record_type=record_type, record_id=record_id,
                         sync_id=(sync_ids or {}).get(record_id), stage=stages.PARKED, detail=detail,
                         task_id=self._task_id, direction=self._direction)
        trail.flush()

    def park_buffered(self, buffer, connection_id: int, resource: str, *, detail: dict) -> None:
        """Everything waiting in a connection's (leased) buffer waits durably for the reconnect instead;
        each claim leaves the buffer once it is parked."""
        while (claim := buffer.claim(connection_id, resource)) is not None:
            self.park(connection_id=connection_id, record_type=RECORD_TYPES[resource], record_ids=claim.ids,
                      sync_ids=claim.sync_ids, reason=NEEDS_REAUTH, detail=detail)
            buffer.acknowledge(claim)


def park_for_daily_budget(connection_id: int, resource: str, ids: list[str], sync_ids: dict[str, str], *,
                          retry_after: float, priority: int, parked, audit, clock: Clock) -> datetime:
    """Park unfetched ids durably until the daily budget frees; returns when that is."""
    resume_after = Parking(parked, audit, clock).park(
        connection_id=connection_id, record_type=RECORD_TYPES[resource], record_ids=ids, sync_ids=sync_ids,
        reason=DAILY_BUDGET, redrive=Redrive(FETCH, resource, priority=priority), wait=retry_after)
    log.warning("pipeline.xero.daily_budget_spent",
                extra={"connection_id": connection_id, "resource": resource, "parked": len(ids)})
    return resume_after


@dataclass(frozen=True)
class ParkedBatch:
    """A chunk of parked records that go back to one task together (see ``resume_parked_work``)."""

    stage: str  # FETCH, PUSH or NOTIFY (connector.store.parked)
    connection_id: int
    resource: str
    ids: list[str]
    sync_ids: dict[str, str]
    priority: int
    attempts: int  # the most waits any of them had: a further failure waits longer


def resume_parked_work(
    *, store, enqueue: Callable[[ParkedBatch], None], connection_ids: Iterable[int] | None = None,
    held=None, batch: int = 500,
) -> int:
    """Put parked work whose wait is over back on the queues, for connections that are active.

    One re-drive for every kind of wait (a reconnect, a limit's reset, an outage's backoff, Zoho's first
    connect). First the webhook ids ``held`` (connector.held_events) for these connections'
    organisations before they were connected join the parked work. Each chunk is handed over to
    ``enqueue`` before its rows leave the store (ParkedWorkStore.hand_over).
    """
    if held is not None:
        held.adopt(store, connection_ids)
    candidates = connection_ids if connection_ids is not None else store.parked.connections_with_due_work()
    resumed = 0

    def deliver(items) -> None:
        groups: dict[tuple, list] = {}
        for item in items:
            groups.setdefault((item.stage, item.resource, item.priority), []).append(item)
        for (stage, resource, priority), group in sorted(groups.items(), key=lambda g: g[0][2]):
            size = RESUME_CHUNK.get(stage, 50)
            for start in range(0, len(group), size):
                part = group[start:start + size]
                enqueue(ParkedBatch(stage, part[0].connection_id, resource, [p.record_id for p in part],
                                    {p.record_id: p.sync_id for p in part if p.sync_id}, priority,
                                    max(p.attempts for p in part)))

    for connection_id in candidates:
        connection = store.connections.get(connection_id)
        if connection is None or not connection.active:
            continue
        # Work waiting for Zoho's first connect stays parked until then: re-queued, it would only wait again.
        waiting = None if connection.zoho_connected else ZOHO_NOT_CONNECTED
        while handed := store.parked.hand_over(connection_id, deliver, limit=batch, skip_reason=waiting):
            resumed += handed
    if resumed:
        log.info("resumed %d parked record(s)", resumed)
    return resumed
