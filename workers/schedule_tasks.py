"""Scheduled Xero work, planned: beat asks the schedule (connector/xero_schedule.py) every minute which
polls are due per organisation, and each poll asks the budget planner (connector/budget.py) before every
page. Webhook intake feeds the schedule: deliveries seen, gaps in their sequence, late deliveries, and
invoices whose fetch showed payments; and the receiver probe (connector/receiver_probe.py), beat's other
minute job here, a receiver back after an outage."""

from __future__ import annotations

import logging
from datetime import datetime

from connector import queues
from connector.budget import scheduled_allowance
from connector.xero.webhook_body import delivery_sequences
from connector.xero_schedule import (
    GAP,
    LATE_DELIVERY,
    RECEIVER_OUTAGE,
    catch_up_due,
    check_due,
    delivery_is_late,
    payments_due,
    sequence_gap,
    sight_invoices,
)
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps

log = logging.getLogger(__name__)

DECIDERS = {"catch_up": catch_up_due, "payments": payments_due, "check": check_due}


def org_schedule(deps, connection_id: int):
    return deps.schedule_state.load(connection_id, last_write_back_at=deps.budget_ledger.last_write_back(connection_id))


def due(deps, connection_id: int, purpose: str):
    """The schedule's decision for ``purpose`` now (None: not due)."""
    allowance = scheduled_allowance(deps.budget_ledger.day_limit(connection_id), deps.budget_planner.share)
    return DECIDERS[purpose](org_schedule(deps, connection_id), deps.schedule_policy, deps.clock.time(), allowance)


@app.task(name="connector.plan_xero_polls", base=ConnectorTask, bind=True)
def plan_xero_polls(self) -> int:
    """Beat: queue the catch-up and payment polls that are due (the planner grants their calls)."""
    deps = get_deps()
    queued = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        for purpose in ("catch_up", "payments"):
            decision = due(deps, connection.id, purpose)
            if decision is None:
                continue
            log.info("xero.schedule.due", extra={"connection_id": connection.id, "purpose": purpose,
                                                 "reason": decision.reason})
            # By name: workers/xero_tasks.py imports this module (webhook intake feeds the schedule).
            app.send_task("connector.poll_xero", args=[connection.id, list(decision.resources), False],
                          kwargs={"purpose": purpose, "planned": True}, queue=queues.XERO_QUEUE)
            queued += 1
    return queued


@app.task(name="connector.probe_receiver", base=ConnectorTask, bind=True)
def probe_receiver(self) -> str:
    """Beat, every minute: GET the receiver's public /healthz and record what it saw. When the receiver is back
    after an outage that counts, every active connection owes a catch-up: the RECEIVER_OUTAGE trigger is raised
    for each (the next planner tick runs it, within the budget). Returns the receiver's state."""
    deps = get_deps()
    if deps.receiver_probe_off is not None:
        return "not_probed"
    state, _ = deps.receiver_probe.probe()
    if state.catch_up_owed is not None:  # just owed, or owed by a probe whose task died before raising it
        raise_outage_triggers(deps)
        deps.receiver_probe.settle_catch_up(state.catch_up_owed)
    return state.state


def raise_outage_triggers(deps) -> list[int]:
    """A catch-up for every active connection (the trigger's first time stays until a catch-up clears it)."""
    raised = []
    for connection in deps.store.connections.all():
        if connection.state == "active":
            deps.schedule_state.raise_trigger(connection.id, RECEIVER_OUTAGE)
            raised.append(connection.id)
    log.info("xero.schedule.receiver_outage_catch_up", extra={"connection_ids": raised})
    return raised


def note_delivery(deps, body, events: list[dict], connection_ids: set[int]) -> None:
    """What one webhook delivery tells the schedule: webhooks arrive (for these organisations); a gap in
    the app's sequence (every connection may have missed something); events that arrived late."""
    now = deps.clock.time()
    for connection_id in connection_ids:
        deps.schedule_state.note_webhook(connection_id)
    dates = []
    for event in events:
        try:
            dates.append(datetime.fromisoformat(str(event.get("eventDateUtc"))))
        except ValueError:
            continue
    if delivery_is_late(dates, now, deps.schedule_policy):
        for connection_id in connection_ids:
            deps.schedule_state.raise_trigger(connection_id, LATE_DELIVERY)
    sequences = delivery_sequences(body) if isinstance(body, str) else None
    if sequences is None:
        return
    previous = deps.schedule_state.note_sequence(*sequences)
    if sequence_gap(previous, *sequences):
        log.warning("xero.webhook.sequence_gap", extra={"after": previous, "first": sequences[0]})
        for connection in deps.store.connections.all():
            if connection.state == "active":
                deps.schedule_state.raise_trigger(connection.id, GAP)


def sighting_invoices(deps, connection_id: int, resource: str, on_fetched):
    """Wrap a webhook-driven fetch's hand-over: fetched invoices tell the schedule which invoices are open
    and which payments they show (a payment first seen there: payments raise invoice webhooks here).

    Returns (on_fetched, on_stored) for ``xero_in.flush_xero_buffer``: the fetch hands ``on_stored`` the
    invoices it stored as their newest state, so the hand-over sights them without reading them back; any
    other id handed over (stored newer meanwhile by another fetch) is read from the store, as all were."""
    if resource != "invoices":
        return on_fetched, None
    kept: dict[str, dict] = {}

    def observe(xero_ids: list[str], sync_ids: dict[str, str]) -> None:
        try:
            taken = {i: kept.pop(i) for i in xero_ids if i in kept}
            payloads = list(taken.values())
            unread = [i for i in xero_ids if i not in taken]
            if unread:
                payloads += [s.payload for s in deps.store.snapshots.get_many(connection_id, "invoices",
                                                                             unread).values()]
            sighting = sight_invoices(payloads, deps.clock.time())
            if deps.schedule_state.note_invoices(connection_id, sighting, webhook_driven=True):
                log.info("xero.schedule.payments_raise_invoice_webhooks", extra={"connection_id": connection_id})
        except Exception:  # the schedule learns from it; the hand-over must not depend on it
            log.exception("xero.schedule.sighting_failed")
        on_fetched(xero_ids, sync_ids)
    return observe, kept.update
