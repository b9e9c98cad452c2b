"""Maintenance tasks (queue "maintenance"): token refresh ahead of expiry, Zoho channel upkeep,
re-driving parked work (connector.parking), replays. Thin wrappers over connector.connect, connector.channels
and connector.parking."""

from __future__ import annotations

import logging

from connector import connect, parking, queues
from connector.call_purpose import WEBHOOK_FETCH
from connector.http import call_purpose
from connector.channels import renew_channels, watch_options
from connector.connect import BEAT_REFRESH_MARGIN_SECONDS, refresh_expiring_tokens
from connector.errors import InvalidArgument
from connector.pipeline import xero_in
from connector.pipeline.xero_in import PRIORITY_REPLAY, PRIORITY_WEBHOOK
from connector.replay import (
    ReplayOutcome,
    ReplayRequest,
    connection_id_of,
    failed_replays,
    needing_fetch,
    parse_since,
    replay_request,
    start_replay,
)
from connector.store.parked import NOTIFY, PUSH, ZOHO_RESOURCE_PREFIX
from connector.zoho.client import MAX_RECORDS_PER_WRITE
import workers.heartbeat_signals  # noqa: F401  (connects the worker's heartbeat to Celery's signals)
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps

log = logging.getLogger(__name__)


@app.task(name="connector.refresh_tokens", base=ConnectorTask, bind=True)
def refresh_tokens(self) -> int:
    """Beat: refresh every stored token set near expiry, once per set (connector.connect)."""
    deps = get_deps()
    report = refresh_expiring_tokens(
        store=deps.store, credentials=deps.credentials,
        token_manager=lambda system, owner_id: deps.token_manager(
            system, owner_id, refresh_margin=BEAT_REFRESH_MARGIN_SECONDS),
    )
    return report.refreshed


@app.task(name="connector.renew_zoho_channels", base=ConnectorTask, bind=True)
def renew_zoho_channels(self) -> int:
    """Beat: keep every Zoho channel alive; a lapsed one is re-created and its gap reconciled."""
    deps = get_deps()
    outcomes = renew_channels(
        zoho_for=deps.zoho_client_for, channels=deps.store.channels, credentials=deps.credentials,
        notify_url=deps.zoho_notify_url, enqueue=enqueue_zoho_notification,
        **watch_options(deps.sync_config),
    )
    failed = {o.connection_id: o.error for o in outcomes if o.action == "failed"}
    for connection_id, error in failed.items():
        connect.record_upkeep_failure(deps.store, connection_id, "zoho_channel_renewal", RuntimeError(error))
    return len(outcomes) - len(failed)


@app.task(name="connector.resume_parked_work", base=ConnectorTask, bind=True)
def resume_parked_work(self, connection_ids: list[int] | None = None) -> int:
    """After a connect, and on beat every minute: re-queue parked work whose wait is over (a reconnect,
    a limit's reset, an outage's backoff), each record to the stage it waits for; first, the webhook ids
    held for these connections' organisations before they were connected join that parked work."""
    deps = get_deps()
    return parking.resume_parked_work(store=deps.store, enqueue=enqueue_parked, connection_ids=connection_ids,
                                      held=deps.held_xero_events)


def enqueue_parked(batch: parking.ParkedBatch) -> None:
    """The Celery side of a re-drive: a parked batch becomes the message of the task its stage names."""
    if batch.stage == PUSH:
        app.send_task(queues.PUSH_RECORDS_TO_ZOHO, args=[batch.connection_id, batch.resource, batch.ids, batch.sync_ids],
                      kwargs={"parked_attempts": batch.attempts}, queue=queues.ZOHO_QUEUE)
    elif batch.stage == NOTIFY:
        module = batch.resource.removeprefix(ZOHO_RESOURCE_PREFIX)
        enqueue_zoho_notification(batch.connection_id, {
            "module": module, "ids": batch.ids, "operation": "update", "channel_id": None, "server_time": None,
            "affected_fields": [], "source": "resumed", "parked_attempts": batch.attempts})
    else:
        app.send_task("connector.fetch_xero_records",
                      args=[batch.connection_id, batch.resource, batch.ids, batch.sync_ids, batch.priority],
                      kwargs={"parked_attempts": batch.attempts}, queue=queues.XERO_QUEUE)


def enqueue_zoho_notification(connection_id: int, notification: dict) -> None:
    app.send_task(queues.INGEST_ZOHO_NOTIFICATION, args=[connection_id, notification], queue=queues.ZOHO_QUEUE)


def enqueue_fetch(connection_id: int, resource: str, ids: list[str], sync_ids: dict,
                  priority: int = PRIORITY_WEBHOOK) -> None:
    app.send_task("connector.fetch_xero_records", args=[connection_id, resource, ids, sync_ids, priority],
                  queue=queues.XERO_QUEUE)


@app.task(name="connector.replay", base=ConnectorTask, bind=True)
def replay(self, connection=None, record=None, ids=None, source="xero", **unexpected) -> int:
    """Re-run the sync of some records of one connection (celery CLI: see README "Operating").

    ``record`` takes any usual spelling ("contact", "contacts", "credit-notes"); ``source`` is "xero"
    (re-fetch, the path a webhook takes, behind webhook work) or "snapshot" (push what is stored).
    A bad argument fails the task with a one-line message, logged without a traceback."""
    deps = get_deps()
    try:
        if unexpected:
            raise InvalidArgument(f"connector.replay takes connection, record, ids and source; "
                                  f"not {', '.join(sorted(unexpected))}")
        request = replay_request(deps.store, connection=connection, record=record, ids=ids, source=source)
    except InvalidArgument as exc:
        log.warning("replay.refused: %s", exc)
        raise
    dispatch_replay(request, task_id=self.request.id)
    return len(request.ids)


@app.task(name="connector.replay_failed", base=ConnectorTask, bind=True)
def replay_failed(self, connection=None, since=None, record=None, error=None, source="xero", limit=1000,
                  **unexpected) -> int:
    """Replay every record still failing (no later sync of it succeeded), narrowed by connection, time,
    record type and error class (as `connector failures` lists them)."""
    deps = get_deps()
    try:
        if unexpected:
            raise InvalidArgument(f"connector.replay_failed takes connection, since, record, error, source and "
                                  f"limit; not {', '.join(sorted(unexpected))}")
        requests = failed_replays(
            deps.store, connection_id=None if connection is None else connection_id_of(connection, deps.store),
            since=None if since is None else parse_since(since, now=deps.store.clock.now()),
            record=record, error=error, source=source, limit=int(limit))
    except InvalidArgument as exc:
        log.warning("replay.refused: %s", exc)
        raise
    for request in requests:
        dispatch_replay(request, task_id=self.request.id)
    return sum(len(r.ids) for r in requests)


def dispatch_replay(request: ReplayRequest, *, task_id: str | None = None) -> None:
    """Audit the new trips and send them on: a fetch at replay priority, or a push of the snapshot."""
    deps = get_deps()
    sync_ids = start_replay(request, audit=deps.store.audit, task_id=task_id)
    to_fetch = needing_fetch(request, deps.store.snapshots)
    if to_fetch:
        enqueue_fetch(request.connection_id, request.resource, to_fetch, {i: sync_ids[i] for i in to_fetch},
                      priority=PRIORITY_REPLAY)
    stored = [i for i in request.ids if i not in to_fetch]
    for start in range(0, len(stored), MAX_RECORDS_PER_WRITE):
        chunk = stored[start:start + MAX_RECORDS_PER_WRITE]
        app.send_task(queues.PUSH_RECORDS_TO_ZOHO, args=[request.connection_id, request.resource, chunk,
                                                         {i: sync_ids[i] for i in chunk}],
                      queue=queues.ZOHO_QUEUE)


def replay_in_process(request: ReplayRequest) -> ReplayOutcome:
    """Run a replay here and now (the CLI on the embedded default, where no worker would see a task)."""
    from workers.zoho_tasks import make_zoho_push

    deps = get_deps()
    sync_ids = start_replay(request, audit=deps.store.audit)
    connection = deps.store.connections.get(request.connection_id)
    if connection.state != "active":
        outcome = ReplayOutcome(request.resource)
        outcome.failed = {i: f"connection #{connection.id} is {connection.state}: reconnect it first "
                             f"(`connector connect xero`)" for i in request.ids}
        return outcome
    to_fetch = needing_fetch(request, deps.store.snapshots)
    if to_fetch:
        with call_purpose(WEBHOOK_FETCH):  # an operator's re-fetch is live work, as the webhook's was
            xero_in.fetch_xero_records(
                xero_in.FetchBatch(request.connection_id, request.resource, to_fetch, sync_ids),
                xero=deps.xero_client(connection, priority=PRIORITY_REPLAY), snapshots=deps.store.snapshots,
                audit=deps.store.audit)
    push = make_zoho_push(deps, connection, priority=PRIORITY_REPLAY)
    if request.resource == "contacts":
        batch = push.contacts(request.ids, sync_ids)
    elif request.resource == "invoices":
        batch = push.invoices(request.ids, sync_ids)
    else:
        batch = push.related(request.resource, request.ids, sync_ids)
    return ReplayOutcome.of(request.resource, request.ids, batch)


@app.task(name="connector.prune_audit_trail", base=ConnectorTask, bind=True)
def prune_audit_trail(self) -> int:
    """Beat: drop audit rows older than CONNECTOR_AUDIT_DAYS (0 keeps them all), in batches."""
    from datetime import timedelta

    deps = get_deps()
    days = deps.settings.audit_days
    if days <= 0:
        return 0
    deleted = deps.store.audit.prune(deps.store.clock.now() - timedelta(days=days))
    if deleted:
        log.info("audit.pruned", extra={"deleted": deleted, "older_than_days": days})
    return deleted
