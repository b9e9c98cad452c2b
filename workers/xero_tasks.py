"""Xero-side tasks (queue "xero"): turn webhook events and polls into fetched snapshots, then hand over to Zoho.

No task ever sleeps on a rate limit: a denied flush gives its ids back to the shared buffer and
schedules itself again after the limit's own short countdown; a spent daily budget parks the work
in the database (connector.parking) and ``connector.resume_parked_work`` (beat, every minute) puts it
back once the budget frees. ``sweep_buffers`` (beat, every minute) flushes buffers whose flush was lost.
"""

from __future__ import annotations

import logging
import random

from connector import logs, queues
from connector.backoff import backoff_delay
from connector.budget import BudgetSpent, Deferral
from connector.call_purpose import CATCH_UP, CHECK, PAYMENTS, WEBHOOK_FETCH
from connector.http import call_purpose
from connector.coalesce import IDS_PER_FETCH
from connector.errors import NeedsReauth, RateLimited, is_infrastructure_failure
from connector.parking import Redrive
from connector.pipeline import xero_in
from connector.pipeline.common import RECORD_TYPES, XERO_CATEGORIES
from connector.polling import POLLED_RESOURCES, SWEPT_RESOURCES, poll_resource
from connector.record_locks import Lease, LeaseLost
from connector.store import audit as stages
from connector.store.parked import FETCH
from connector.xero.webhook_body import delivered_events
from connector.xero_schedule import CREDIT_RESOURCES, PAYMENT_RESOURCES
from connector.zoho.client import MAX_RECORDS_PER_WRITE
from workers.app import app
from workers.base import ConnectorTask, max_broker_countdown
from workers.buffer_flush import XERO_FLUSH, queue_flush
from workers.deps import get_deps
from workers.schedule_tasks import due, note_delivery, sighting_invoices
from workers.zoho_tasks import PUSHED_RESOURCES, buffer_zoho_push, flush_zoho_buffer

log = logging.getLogger(__name__)

WEBHOOK_RESOURCES = tuple(XERO_CATEGORIES.values())
# A full sweep that finds a poll running waits for it (re-queued this often, see poll_is_running).
SWEEP_DEFER_SECONDS = 60.0


def hand_over_to_zoho(connection_id: int, resource: str):
    """The on_fetched callback: push every stored chunk on to Zoho (queue "zoho")."""
    def push(xero_ids: list[str], sync_ids: dict[str, str]) -> None:
        buffer_zoho_push.apply_async(args=[connection_id, resource, list(xero_ids), dict(sync_ids)],
                                     queue=queues.ZOHO_QUEUE)
    return push


def rate_limit_countdown(retry_after: float) -> float:
    # A little jitter, so tasks denied together do not all come back in the same millisecond.
    return backoff_delay(0, base=retry_after, cap=max_broker_countdown(), extra=0.25)


@app.task(name=queues.INGEST_XERO_EVENTS, base=ConnectorTask, bind=True)
def ingest_xero_events(self, events: list[dict] | str, sync_ids: list[str] | None = None) -> int:
    """One webhook delivery: the body as the receiver queued it with one sync id per event (or, from
    a receiver older than that, the events themselves)."""
    body = events
    events = delivered_events(events, sync_ids)
    deps = get_deps()
    window = deps.settings.xero_batch_window
    tenants = {str(event.get("tenantId")) for event in events}
    connections = xero_in.TenantConnections(deps.store.connections)  # one lookup per tenant of the body
    # The tenant lookup and the received rows: one transaction, committed before any flush is queued.
    with deps.store.transaction():
        if len(tenants) == 1:  # one organisation's delivery: its connection goes on every line of this task
            connection = connections.by_tenant(next(iter(tenants)))
            logs.bind(connection_id=connection.id if connection else None)
        to_flush = xero_in.buffer_xero_events(events, connections=connections, audit=deps.store.audit,
                                              coalescer=deps.coalescer, window=window, held=deps.held_xero_events)
    for connection_id, resource in to_flush:
        queue_flush(deps.coalescer, flush_xero_buffer, connection_id, resource, countdown=window)
    found = (connections.by_tenant(tenant) for tenant in tenants)  # looked up above: no new query
    note_delivery(deps, body, events, {c.id for c in found if c is not None})
    return len(to_flush)


@app.task(name=XERO_FLUSH, base=ConnectorTask, bind=True)
def flush_xero_buffer(self, connection_id: int, resource: str) -> int:
    """Fetch what gathered in one (connection, resource) buffer: ≤50 ids per IDs= call, handed to Zoho
    a whole upsert (100 records) at a time, so those pushes go straight out without the Zoho buffer's
    wait. A backlog is shared out: once this flush has its ids, another is queued for the rest."""
    deps = get_deps()
    coalescer = deps.coalescer
    coalescer.start_flush(connection_id, resource)
    connection = deps.store.connections.get(connection_id)
    if connection is None or connection.state != "active":
        # A connection that cannot run: its buffered ids wait durably for the reconnect.
        state = connection.state if connection else "missing"
        self.parking().park_buffered(coalescer, connection_id, resource,
                                     detail={"reason": f"connection is {state}"})
        return 0
    def let_another_flush_take_the_rest() -> None:
        if coalescer.reschedule(connection_id, resource, countdown=0):
            queue_flush(coalescer, flush_xero_buffer, connection_id, resource, countdown=0)

    on_fetched, on_stored = sighting_invoices(deps, connection_id, resource, hand_over_to_zoho(connection_id, resource))
    with call_purpose(WEBHOOK_FETCH):
        outcome = xero_in.flush_xero_buffer(
            connection_id, resource, coalescer=coalescer, xero=deps.xero_client(connection, priority=0),
            snapshots=deps.store.snapshots, audit=deps.store.audit, parked=deps.store.parked, clock=deps.store.clock,
            on_fetched=on_fetched, on_stored=on_stored,
            transaction=deps.store.transaction, on_claimed=let_another_flush_take_the_rest,
            hand_over_size=MAX_RECORDS_PER_WRITE,
        )
    logs.bind(**logs.one_trip(list(outcome.sync_ids), outcome.sync_ids))  # this task's remaining lines
    log.info("xero.buffer.flushed", extra={"fetched": len(outcome.fetched), "parked": len(outcome.parked),
                                           "retry_after": outcome.retry_after,
                                           "error": type(outcome.error).__name__ if outcome.error else None})
    if outcome.error is not None:
        hand_on_unfinished(self, connection_id, resource, outcome)
    # Denied: the ids are back in the buffer; more than one claim's worth: go on at once.
    countdown = 0.0 if outcome.retry_after is None else rate_limit_countdown(outcome.retry_after)
    if coalescer.reschedule(connection_id, resource, countdown=countdown):
        queue_flush(coalescer, flush_xero_buffer, connection_id, resource, countdown=countdown)
    return len(outcome.fetched)


def hand_on_unfinished(task: ConnectorTask, connection_id: int, resource: str, outcome: xero_in.FlushOutcome) -> None:
    """A flush failed part-way: its unfinished ids become fetch tasks of their own (≤50 ids each), so
    each meets the retry policy on its own and a bad id cannot hold up the buffer; then they leave the
    buffer. When our own services are down they go back to the buffer and the flush is retried."""
    coalescer = get_deps().coalescer
    if is_infrastructure_failure(outcome.error):
        coalescer.release(outcome.claim)
        raise outcome.error
    try:
        for start in range(0, len(outcome.unfinished), IDS_PER_FETCH):
            ids = outcome.unfinished[start:start + IDS_PER_FETCH]
            sync_ids = {i: outcome.sync_ids[i] for i in ids if i in outcome.sync_ids}
            countdown = task.backoff() if start == 0 else 0.0  # the first chunk is the one that failed
            if start == 0:
                task.audit_all(stages.RETRYING, connection_id=connection_id, record_type=RECORD_TYPES[resource],
                               record_ids=ids, sync_ids=sync_ids, detail={
                                   "reason": str(outcome.error), "attempt": 1, "countdown": round(countdown, 2)})
            fetch_xero_records.apply_async(args=[connection_id, resource, ids, sync_ids], countdown=countdown,
                                           retries=1, queue=queues.XERO_QUEUE)
    except Exception:
        coalescer.release(outcome.claim)
        raise
    coalescer.acknowledge(outcome.claim)
    log.warning("xero.flush.handed_on connection=%s resource=%s ids=%d: %s", connection_id, resource,
                len(outcome.unfinished), outcome.error)


@app.task(name="connector.fetch_xero_records", base=ConnectorTask, bind=True)
def fetch_xero_records(self, connection_id: int, resource: str, ids: list[str], sync_ids: dict | None = None,
                       priority: int = xero_in.PRIORITY_WEBHOOK, parked_attempts: int = 0) -> int:
    """Fetch given ids now (replays pass priority 1, resumed work its parked priority), then push them."""
    deps = get_deps()
    record_type = RECORD_TYPES[resource]
    sync_ids = dict(sync_ids or {})
    redrive = Redrive(FETCH, resource, priority=priority, attempts=parked_attempts)
    connection = self.active_connection(connection_id, record_type=record_type, record_ids=ids, sync_ids=sync_ids,
                                        redrive=redrive)
    if connection is None:
        return 0
    batch = xero_in.FetchBatch(connection_id, resource, list(ids), sync_ids)
    try:
        with call_purpose(WEBHOOK_FETCH):
            fetched = xero_in.fetch_xero_records(
                batch, xero=deps.xero_client(connection, priority=priority), snapshots=deps.store.snapshots,
                audit=deps.store.audit, transaction=deps.store.transaction,
            )
    except Exception as exc:
        def split(part: list[str], countdown: float) -> None:
            fetch_xero_records.apply_async(
                args=[connection_id, resource, part, {i: sync_ids[i] for i in part if i in sync_ids}, priority,
                      parked_attempts], countdown=countdown, retries=self.request.retries + 1,
                queue=queues.XERO_QUEUE)

        self.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=list(ids),
                           sync_ids=sync_ids, redrive=redrive, split=split)
        return 0
    if fetched:
        hand_over_to_zoho(connection_id, resource)(fetched, {i: sync_ids[i] for i in fetched if i in sync_ids})
    return len(fetched)


@app.task(name="connector.poll_xero", base=ConnectorTask, bind=True)
def poll_xero(self, connection_id: int, resources: list[str] | None = None, full_sweep: bool = False,
              purpose: str | None = None, planned: bool = False) -> int:
    """If-Modified-Since poll (or full sweep) of one connection, at backfill priority. Scheduled work:
    the budget planner grants each page (connector/budget.py); a page it defers stops the poll, whose
    cursors and triggers keep its place. ``planned``: queued by the schedule, which is asked again here
    (a poll that ran meanwhile may have made this one needless)."""
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    if connection is None or connection.state != "active":
        return 0
    purpose = purpose or (CHECK if full_sweep else (
        PAYMENTS if resources and set(resources) <= set(PAYMENT_RESOURCES + CREDIT_RESOURCES) else CATCH_UP))
    if planned and due(deps, connection_id, purpose) is None:
        return 0
    lease = poll_lease(connection_id)
    if not lease.take():
        return poll_is_running(self, connection_id, full_sweep)
    started_at = deps.clock.time()

    def before_page() -> None:
        lease.renew()
        answer = deps.budget_planner.ask(connection_id, purpose)
        if isinstance(answer, Deferral):
            raise BudgetSpent(answer)

    xero = deps.xero_client(connection, priority=xero_in.PRIORITY_BACKFILL)
    changed = 0
    try:
        with call_purpose(purpose):
            for resource in resources or POLLED_RESOURCES:
                outcome = poll_resource(connection_id, resource, xero=xero, cursors=deps.store.poll_cursors,
                                        snapshots=deps.store.snapshots, audit=deps.store.audit,
                                        on_changed=hand_over_to_zoho(connection_id, resource),
                                        full_sweep=full_sweep, before_page=before_page)
                changed += len(outcome.changed)
                if resource == "payments":
                    deps.schedule_state.note_payments(connection_id, outcome.changed)
                if resource == CREDIT_RESOURCES[-1]:  # both listed: they are polled together
                    deps.schedule_state.credits_polled(connection_id, started_at)
    except LeaseLost:  # this poll stalled past its lease; another may hold it now: leave the rest to that one
        log.warning("xero.poll.lease_lost connection=%s: the poll stopped, the next one goes on from its cursor",
                    connection_id)
        if full_sweep:  # the sweep starts again once the other poll is done
            return poll_is_running(self, connection_id, full_sweep)
        return changed
    except BudgetSpent as spent:  # deferred, with its reason, by the planner: the schedule asks again later
        lease.release()
        log.warning("xero.poll.deferred", extra={"connection_id": connection_id, "purpose": purpose,
                                                 "reason": spent.deferral.reason})
        return changed
    except Exception as exc:
        lease.release()
        if xero_in.is_daily_budget(exc):
            # Polls are the first to yield the budget; the cursors hold the place for after the reset.
            log.warning("xero.poll.daily_budget_spent", extra={"connection_id": connection_id})
            return changed
        if isinstance(exc, NeedsReauth):
            deps.store.connections.set_state(connection_id, "needs_reauth", str(exc))
            raise
        if isinstance(exc, RateLimited):
            raise self.retry(exc=exc, countdown=rate_limit_countdown(exc.retry_after), max_retries=32) from None
        self.retry_or_fail(exc, connection_id=connection_id, record_type="poll", record_ids=[])
    lease.release()
    deps.schedule_state.done(connection_id, purpose, started_at)
    return changed


def poll_lease(connection_id: int) -> Lease:
    """One poll per connection at a time. The poll renews its lease before every page, and no page
    outlasts the task's hard time limit (the worker kills the task there), so a live poll keeps its
    lease; a killed one frees the connection within that time."""
    deps = get_deps()
    return Lease(deps.redis, f"xero:poll-lock:{connection_id}", ttl=deps.settings.task_time_limit)


def poll_is_running(task: ConnectorTask, connection_id: int, full_sweep: bool) -> int:
    """Another poll of this connection holds (or may hold) the lease. Its cursor covers a delta poll,
    which stops here; a sweep waits for it, for at most twice the longest a poll can hold the lease (a
    whole run, then the lease lapsing if its worker was killed)."""
    if not full_sweep:
        return 0
    longest_hold = 2 * get_deps().settings.task_time_limit
    if task.request.retries * SWEEP_DEFER_SECONDS > 2 * longest_hold:
        log.error("xero.sweep.gave_up connection=%s: a poll held the lock for too long", connection_id)
        return 0
    raise task.retry(countdown=SWEEP_DEFER_SECONDS + random.uniform(0, 5), max_retries=None)


@app.task(name="connector.poll_xero_connections", base=ConnectorTask, bind=True)
def poll_xero_connections(self, full_sweep: bool = False) -> int:
    """Fan out one poll per active connection (beat's daily hour: a sweep where the consistency check is due)."""
    deps = get_deps()
    resources = list(SWEPT_RESOURCES) if full_sweep else None
    active = [c.id for c in deps.store.connections.all() if c.state == "active"]
    if full_sweep:  # the daily hour only considers the consistency check; it runs when due (weekly)
        active = [cid for cid in active if due(deps, cid, CHECK) is not None]
    for connection_id in active:
        poll_xero.apply_async(args=[connection_id, resources, full_sweep], queue=queues.XERO_QUEUE)
    return len(active)


@app.task(name="connector.sweep_buffers", base=ConnectorTask, bind=True)
def sweep_buffers(self) -> int:
    """Beat: flush every buffer (both directions) whose ids wait with no flush scheduled: the flush task
    was lost with its worker or never queued (its flag expired), or a worker died holding a lease."""
    deps = get_deps()
    scheduled = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        for buffer, resources, flush in ((deps.coalescer, WEBHOOK_RESOURCES, flush_xero_buffer),
                                         (deps.zoho_buffer, PUSHED_RESOURCES, flush_zoho_buffer)):
            for resource in resources:
                if buffer.reschedule(connection.id, resource, countdown=0):
                    queue_flush(buffer, flush, connection.id, resource, countdown=0)
                    scheduled += 1
    return scheduled
