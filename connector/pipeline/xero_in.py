"""Xero in: webhook events and polls become fetched snapshots (see connector/pipeline/__init__.py).

Webhook ids are not fetched at once: ``buffer_xero_events`` adds them to a shared Redis buffer per
(connection, resource) (connector/coalesce.py) and ``flush_xero_buffer`` fetches whatever gathered
there within the batch window, ≤50 ids per ``IDs=`` call. When Xero's daily budget is spent the
unfetched ids are parked durably (connector.parking) until the budget frees, instead of waiting
hours as countdown tasks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from connector import logs
from connector.clock import Clock
from connector.coalesce import DEFAULT_FLUSH_CHUNKS, IDS_PER_FETCH, Claim, LeasedBuffer
from connector.errors import NotFound, RateLimited
from connector.mapping.xero_values import parse_xero_date
from connector.pipeline.common import ID_FIELDS, RECORD_TYPES, XERO_CATEGORIES, new_sync_id
from connector.ratelimit import problem_scope
from connector.parking import park_for_daily_budget
from connector.store import audit as stages

log = logging.getLogger(__name__)

# Governor priorities (connector/ratelimit.py): webhook work first, then replays, then polls.
PRIORITY_WEBHOOK = 0
PRIORITY_REPLAY = 1
PRIORITY_BACKFILL = 2

# Called with (fetched ids, id → sync id) once a chunk is stored: the hand-over to Zoho.
OnFetched = Callable[[list[str], dict[str, str]], None]
OnStored = Callable[[dict[str, dict]], None]  # fetched records stored as their newest state, by Xero id
# Makes a block whose store writes share one transaction (Store.transaction); none by default.
Transaction = Callable[[], AbstractContextManager]


@dataclass(frozen=True)
class FetchBatch:
    connection_id: int
    resource: str
    ids: list[str]
    sync_ids: dict[str, str] = field(default_factory=dict)  # xero id → sync id of this trip


class TenantConnections:
    """Connections by Xero tenant for one webhook body: each tenant is looked up once, not per event."""

    def __init__(self, connections) -> None:
        self._connections = connections
        self._found: dict[str, object] = {}

    @classmethod
    def of(cls, connections) -> "TenantConnections":
        return connections if isinstance(connections, cls) else cls(connections)

    def by_tenant(self, tenant_id: str):
        if tenant_id not in self._found:
            self._found[tenant_id] = self._connections.by_tenant(tenant_id)
        return self._found[tenant_id]


class UnknownTenantReport:
    """The WARNING summary of webhook events of tenants with no connection (yet): at most one every
    ``interval`` seconds per process (at once for the first), beside each delivery's one
    ``pipeline.xero.held`` line, never a line per event."""

    def __init__(self, *, interval: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_summary: float | None = None
        self._events: Counter[str] = Counter()  # per tenant, since the last summary
        self._deliveries = 0

    def delivery(self, events_by_tenant: Counter[str]) -> None:
        with self._lock:
            self._events.update(events_by_tenant)
            self._deliveries += 1
            now = self._clock()
            if self._last_summary is not None and now - self._last_summary < self._interval:
                return
            events, deliveries = self._events, self._deliveries
            self._events, self._deliveries, self._last_summary = Counter(), 0, now
        log.warning("xero.unknown_tenant: %d events in %d %s for Xero tenants not connected (%s), held until "
                    "they are; connect them with `connector connect xero`", sum(events.values()), deliveries,
                    "delivery" if deliveries == 1 else "deliveries",
                    ", ".join(f"{tenant}: {count}" for tenant, count in sorted(events.items())),
                    extra={"tenants": dict(events)})


UNKNOWN_TENANTS = UnknownTenantReport()


@dataclass
class _Received:
    connection_id: int
    resource: str
    events: dict[str, dict] = field(default_factory=dict)  # xero id → its first event in this delivery


def _sort_events(events: Iterable[dict], *, connections) -> tuple[list[_Received], dict[str, dict]]:
    """Events by (connection, resource), duplicates in one delivery collapsed; and those of tenants with
    no connection yet, as tenant → {(resource, xero id): sync id}, to be held (connector.held_events)."""
    grouped: dict[tuple[int, str], _Received] = {}
    unconnected: dict[str, dict[tuple[str, str], str]] = {}
    connections = TenantConnections.of(connections)
    for event in events:
        resource = XERO_CATEGORIES.get(str(event.get("eventCategory", "")).upper())
        record_id = str(event.get("resourceId", ""))
        if resource is None or not record_id:
            log.warning("pipeline.xero.event_ignored", extra={"category": event.get("eventCategory")})
            continue
        tenant_id = str(event.get("tenantId", ""))
        connection = connections.by_tenant(tenant_id)
        if connection is None:
            unconnected.setdefault(tenant_id, {}).setdefault(
                (resource, record_id), str(event.get("sync_id") or new_sync_id()))
            continue
        received = grouped.setdefault((connection.id, resource), _Received(connection.id, resource))
        received.events.setdefault(record_id, event)
    return list(grouped.values()), unconnected


def _hold(unconnected: dict[str, dict], held, unknown_tenants: UnknownTenantReport) -> None:
    """Hold the ids of tenants with no connection yet; one log line for the delivery, and now and then a
    summary of all deliveries."""
    counts = [held.hold(tenant_id, ids) for tenant_id, ids in unconnected.items()]
    dropped = sum(d for _, d in counts)
    # Past the bound nothing is lost: the connection's first poll lists the whole organisation.
    log.log(logging.WARNING if dropped else logging.INFO, "pipeline.xero.held", extra={
        "tenant_ids": sorted(unconnected), "held": sum(h for h, _ in counts), "dropped": dropped,
        "next": "connect these Xero organisations; their held records are fetched then"})
    unknown_tenants.delivery(Counter({tenant_id: len(ids) for tenant_id, ids in unconnected.items()}))


def buffer_xero_events(events: Iterable[dict], *, connections, audit, coalescer: LeasedBuffer,
                       window: float, held,
                       unknown_tenants: UnknownTenantReport | None = None) -> list[tuple[int, str]]:
    """Add webhook ids to their fetch buffers and audit each as received; ids of a tenant with no
    connection yet are ``held`` (connector.held_events.HeldXeroEvents) until it is connected.

    Returns the (connection id, resource) buffers whose flush the caller must schedule, with a
    countdown of ``window``: only the first events of a window get one, later ones ride along.
    A record already waiting in the buffer joins that trip (its sync id), so one fetch serves both.
    If this raises (the database is down), no flush flag set here is left standing: the retry of the
    delivery adds the ids again and schedules the flush itself.
    """
    to_flush: list[tuple[int, str]] = []
    trail = audit.batch()  # one transaction per (connection, resource) of the body, not one per event
    try:
        received_events, unconnected = _sort_events(events, connections=connections)
        if unconnected:
            _hold(unconnected, held, unknown_tenants or UNKNOWN_TENANTS)
        for received in received_events:
            # The receiver starts each trip's sync id; events from elsewhere (tests, replays) get one here.
            proposed = {record_id: str(event.get("sync_id") or new_sync_id())
                        for record_id, event in received.events.items()}
            flush_needed, in_effect = coalescer.add(received.connection_id, received.resource, proposed,
                                                    countdown=window)
            if flush_needed:
                to_flush.append((received.connection_id, received.resource))
            for record_id, event in received.events.items():
                trail.record(
                    connection_id=received.connection_id,
                    record_type=RECORD_TYPES[received.resource],
                    record_id=record_id,
                    sync_id=in_effect[record_id],
                    stage=stages.RECEIVED,
                    detail={"event_type": event.get("eventType"), "event_date": event.get("eventDateUtc"),
                            "joined_pending_fetch": in_effect[record_id] != proposed[record_id]},
                )
            trail.flush()
        trail.flush()
    except Exception:
        for connection_id, resource in to_flush:
            coalescer.cancel_flush(connection_id, resource)
        raise
    return to_flush


def fetch_xero_records(batch: FetchBatch, *, xero, snapshots, audit, transaction: Transaction = nullcontext,
                       on_stored: OnStored | None = None) -> list[str]:
    """GET the records of a batch and keep the newest state of each; returns the ids fetched.

    The snapshots and their audit rows are written in one ``transaction()`` (after the GET); then
    ``on_stored`` gets the records stored as their newest state, by id (what a read of the store would
    give now, without the read).
    """
    getter = {
        "contacts": xero.get_contacts,
        "invoices": xero.get_invoices,
        "creditnotes": xero.get_credit_notes,
        # Payments, overpayments and prepayments have no IDs= filter (OAS-ACC): one GET each.
        "payments": lambda ids: _each(xero, "payments", ids),
        "overpayments": lambda ids: _each(xero, "overpayments", ids),
        "prepayments": lambda ids: _each(xero, "prepayments", ids),
    }[batch.resource]
    id_field = ID_FIELDS[batch.resource]
    records = [(str(record[id_field]), parse_xero_date(record.get("UpdatedDateUTC")) or datetime.now(timezone.utc),
                record) for record in getter(batch.ids)]
    with transaction():
        fetched, stored = _store_fetched(batch, records, snapshots=snapshots, audit=audit)
    if on_stored is not None:
        newest: dict[str, tuple[datetime, dict]] = {}
        for xero_id, updated, record in records:
            if xero_id in stored and (xero_id not in newest or updated > newest[xero_id][0]):
                newest[xero_id] = (updated, record)
        on_stored({xero_id: record for xero_id, (_, record) in newest.items()})
    return fetched


def _store_fetched(batch: FetchBatch, records: list[tuple[str, datetime, dict]], *, snapshots,
                   audit) -> tuple[list[str], set[str]]:
    record_type = RECORD_TYPES[batch.resource]
    stored = snapshots.put_many_if_newer(batch.connection_id, batch.resource, records)  # one statement
    trail = audit.batch()

    def record(xero_id: str, stage: str, detail: dict) -> None:
        trail.record(connection_id=batch.connection_id, record_type=record_type, record_id=xero_id,
                     sync_id=batch.sync_ids.get(xero_id), stage=stage, detail=detail)

    fetched: list[str] = []
    for xero_id, updated, _ in records:
        record(xero_id, stages.FETCHED, {"updated_utc": updated.isoformat(), "newest": xero_id in stored})
        fetched.append(xero_id)
    for missing in set(batch.ids) - set(fetched):
        record(missing, stages.FAILED, {"reason": "Xero returned no record for this id (deleted, or not visible "
                                                  "to this app)", "error": "NotFound"})
    trail.flush()
    return fetched, stored


def _each(xero, resource: str, ids: list[str]) -> list[dict]:
    found = []
    for record_id in ids:
        try:
            found.append(xero.get_record(resource, record_id))
        except NotFound:
            pass  # audited below as missing, like an id an IDs= list leaves out
    return found


def is_daily_budget(exc: Exception) -> bool:
    """A RateLimited that will last hours: our governor's day window, or Xero's daily 429."""
    return isinstance(exc, RateLimited) and problem_scope(exc.problem) == "day"


@dataclass
class FlushOutcome:
    fetched: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)  # daily budget spent: waiting in ParkedWorkStore
    retry_after: float | None = None  # short rate limit: ids are back in the buffer; flush again then
    error: Exception | None = None  # any other failure: ``unfinished`` is still leased in ``claim``
    unfinished: list[str] = field(default_factory=list)  # the ids ``error`` concerns
    sync_ids: dict[str, str] = field(default_factory=dict)
    claim: Claim | None = None


def flush_xero_buffer(connection_id: int, resource: str, *, coalescer: LeasedBuffer, xero, snapshots, audit,
                      parked, clock: Clock, on_fetched: OnFetched, transaction: Transaction = nullcontext,
                      on_claimed: Callable[[], None] | None = None, hand_over_size: int = IDS_PER_FETCH,
                      max_ids: int = DEFAULT_FLUSH_CHUNKS * IDS_PER_FETCH,
                      on_stored: OnStored | None = None) -> FlushOutcome:
    """Claim up to ``max_ids`` buffered ids and fetch them, ≤50 per call, oldest first.

    ``on_claimed`` runs once ids are claimed (the task lets another flush take what is left, so a
    backlog is fetched by several workers at once). Fetched ids go to ``on_fetched`` in hand-overs of
    ``hand_over_size`` claimed ids (a Zoho upsert's worth), and leave the buffer only once it queued
    their push (enqueue, then acknowledge); the lease is extended after every chunk. A short rate
    limit hands on what was fetched and gives the rest back to the buffer, a spent daily budget parks
    the rest durably, and a worker that dies leaves them to its lease's expiry. Any other error returns
    them still leased (``outcome.claim``): the caller hands them on, then acknowledges the claim (or
    releases it when it cannot).
    """
    claim = coalescer.claim(connection_id, resource, max_ids=max_ids)
    outcome = FlushOutcome()
    if claim is None:
        return outcome
    if on_claimed is not None:
        on_claimed()
    outcome.sync_ids = dict(claim.sync_ids)
    with logs.bound(**logs.one_trip(claim.ids, claim.sync_ids)):
        return _fetch_claim(claim, outcome, connection_id, resource, coalescer=coalescer, xero=xero,
                            snapshots=snapshots, audit=audit, parked=parked, clock=clock, on_fetched=on_fetched,
                            transaction=transaction, hand_over_size=hand_over_size, on_stored=on_stored)


def _fetch_claim(claim, outcome: FlushOutcome, connection_id: int, resource: str, *, coalescer, xero, snapshots,
                 audit, parked, clock: Clock, on_fetched: OnFetched, transaction: Transaction,
                 hand_over_size: int, on_stored: OnStored | None = None) -> FlushOutcome:
    remaining = list(claim.ids)
    held: list[str] = []  # claimed ids fetched (or found missing) whose push is not queued yet: still leased
    held_fetched: list[str] = []

    def hand_over() -> None:
        nonlocal held, held_fetched
        if held_fetched:
            on_fetched(held_fetched, {i: claim.sync_ids[i] for i in held_fetched if i in claim.sync_ids})
        coalescer.acknowledge(claim, held)
        held, held_fetched = [], []

    try:
        while remaining:
            chunk = remaining[:IDS_PER_FETCH]
            batch = FetchBatch(connection_id, resource, chunk, {i: claim.sync_ids[i] for i in chunk
                                                                if i in claim.sync_ids})
            fetched = fetch_xero_records(batch, xero=xero, snapshots=snapshots, audit=audit, transaction=transaction,
                                         on_stored=on_stored)
            remaining = remaining[IDS_PER_FETCH:]
            held += chunk
            held_fetched += fetched
            outcome.fetched += fetched
            if len(held) >= hand_over_size or not remaining:
                hand_over()
            coalescer.extend(claim)
    except RateLimited as exc:
        hand_over()  # what was fetched goes on to Zoho; only the unfetched rest waits
        if is_daily_budget(exc):
            park_for_daily_budget(connection_id, resource, remaining, claim.sync_ids, retry_after=exc.retry_after,
                                  priority=PRIORITY_WEBHOOK, parked=parked, audit=audit, clock=clock)
            coalescer.acknowledge(claim)
            outcome.parked = remaining
        else:
            coalescer.release(claim)
            outcome.retry_after = exc.retry_after
        return outcome
    except Exception as exc:
        # Fetched but not handed over yet: fetched again with the rest (snapshots keep the newest).
        outcome.error, outcome.unfinished, outcome.claim = exc, held + remaining, claim
        return outcome
    coalescer.acknowledge(claim)
    return outcome
