"""Maintenance tasks (queue "maintenance"): token refresh ahead of expiry, Zoho channel upkeep,
resuming work parked for a reconnect, replays. Thin wrappers over connector.connect and connector.channels."""

from __future__ import annotations

import logging

from connector import connect, queues
from connector.channels import renew_channels
from connector.connect import BEAT_REFRESH_MARGIN_SECONDS, refresh_expiring_tokens
from connector.pipeline.xero_in import PRIORITY_REPLAY, PRIORITY_WEBHOOK
from connector.pipeline.common import RECORD_TYPES, new_sync_id
from connector.store import audit as stages
from connector.store.parked import NOTIFY, PUSH, ZOHO_RESOURCE_PREFIX
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
    )
    failed = {o.connection_id: o.error for o in outcomes if o.action == "failed"}
    for connection_id, error in failed.items():
        connect.record_upkeep_failure(deps.store, connection_id, "zoho_channel_renewal", RuntimeError(error))
    return len(outcomes) - len(failed)


@app.task(name="connector.resume_parked_work", base=ConnectorTask, bind=True)
def resume_parked_work(self, connection_ids: list[int] | None = None) -> int:
    """After a reconnect, and on beat every minute: re-queue parked work whose wait is over (a reconnect,
    a limit's reset, an outage's backoff), each record to the stage it waits for."""
    return connect.resume_parked_work(store=get_deps().store, enqueue=enqueue_parked, connection_ids=connection_ids)


def enqueue_parked(batch: connect.ParkedBatch) -> None:
    if batch.stage == PUSH:
        app.send_task("connector.push_to_zoho", args=[batch.connection_id, batch.resource, batch.ids, batch.sync_ids],
                      kwargs={"buffered": False, "parked_attempts": batch.attempts}, queue=queues.ZOHO_QUEUE)
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
def replay(self, connection_id: int, resource: str, xero_ids: list[str]) -> int:
    """Re-run a past or failed sync from a fresh fetch (the path a webhook takes, behind webhook work)."""
    deps = get_deps()
    sync_ids = {xero_id: new_sync_id() for xero_id in xero_ids}
    for xero_id, sync_id in sync_ids.items():
        deps.store.audit.record(
            connection_id=connection_id, record_type=RECORD_TYPES[resource], record_id=xero_id,
            sync_id=sync_id, stage=stages.RECEIVED, detail={"source": "replay"},
        )
    enqueue_fetch(connection_id, resource, list(xero_ids), sync_ids, priority=PRIORITY_REPLAY)
    return len(xero_ids)
