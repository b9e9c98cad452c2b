"""Celery tasks: thin wrappers over connector.pipeline that own retries and chaining.

Queues chain as xero (ingest, fetch) → zoho (push). Every task takes ids, re-reads state and
is idempotent, which is what makes ``acks_late`` safe. Errors map to one policy:
RateLimited → back to the queue after the limit's own countdown (never sleep in a worker);
TransientError → exponential backoff up to ``max_retries``; NeedsReauth → the connection is
marked and the work parked; DataError / RecordRejected / NotFound → audited as failed, no retry.
"""

from __future__ import annotations

import logging
import random

from celery import Task

from connector import pipeline, queues
from connector.errors import DataError, NeedsReauth, NotFound, RateLimited, RecordRejected, TransientError
from connector.store import audit as stages
from workers.app import app
from workers.deps import get_deps

log = logging.getLogger(__name__)

# A rate-limit countdown longer than this is capped: the task re-checks the governor then.
MAX_RATE_LIMIT_COUNTDOWN = 300.0


class ConnectorTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = 8

    def backoff(self) -> float:
        return min(2.0 ** self.request.retries, 300.0) * random.uniform(0.8, 1.2)

    def retry_or_fail(self, exc: Exception, *, connection_id: int | None, record_type: str, record_ids: list[str]):
        """Decide what an error means for this task; always raises (Retry or the error)."""
        deps = get_deps()

        def audit_all(stage: str, detail: dict) -> None:
            for record_id in record_ids:
                deps.store.audit.record(
                    connection_id=connection_id, record_type=record_type, record_id=record_id,
                    stage=stage, detail=detail, task_id=self.request.id,
                )

        if isinstance(exc, NeedsReauth):
            if connection_id is not None:
                deps.store.connections.set_state(connection_id, "needs_reauth", str(exc))
            audit_all(stages.PARKED, {"reason": str(exc)})
            log.error("sync.needs_reauth", extra={"connection_id": connection_id})
            raise exc
        if isinstance(exc, (DataError, RecordRejected, NotFound)):
            audit_all(stages.FAILED, {"reason": str(exc), "error": type(exc).__name__})
            raise exc
        if isinstance(exc, TransientError) and self.request.retries < self.max_retries:
            if isinstance(exc, RateLimited):
                countdown = min(exc.retry_after, MAX_RATE_LIMIT_COUNTDOWN) + random.uniform(0, 0.5)
            else:
                countdown = self.backoff()
            audit_all(stages.RETRYING, {"reason": str(exc), "attempt": self.request.retries + 1, "countdown": round(countdown, 2)})
            raise self.retry(exc=exc, countdown=countdown)
        audit_all(stages.FAILED, {"reason": str(exc), "error": type(exc).__name__, "attempts": self.request.retries + 1})
        raise exc


@app.task(name=queues.INGEST_XERO_EVENTS, base=ConnectorTask, bind=True)
def ingest_xero_events(self, events: list[dict]) -> int:
    deps = get_deps()
    batches = pipeline.group_xero_events(events, connections=deps.store.connections, audit=deps.store.audit)
    for batch in batches:
        fetch_xero_records.apply_async(
            args=[batch.connection_id, batch.resource, batch.ids, batch.sync_ids], queue=queues.XERO_QUEUE
        )
    return len(batches)


@app.task(name="connector.fetch_xero_records", base=ConnectorTask, bind=True)
def fetch_xero_records(self, connection_id: int, resource: str, ids: list[str], sync_ids: dict | None = None) -> int:
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    record_type = pipeline.RECORD_TYPES[resource]
    if connection is None or connection.state != "active":
        # Work for a connection that needs a person stays in the audit trail to be replayed.
        for record_id in ids:
            deps.store.audit.record(
                connection_id=connection_id, record_type=record_type, record_id=record_id,
                stage=stages.PARKED, detail={"reason": f"connection is {connection.state if connection else 'missing'}"},
            )
        return 0
    batch = pipeline.FetchBatch(connection_id, resource, list(ids), dict(sync_ids or {}))
    try:
        fetched = pipeline.fetch_xero_records(
            batch, xero=deps.xero_client(connection), snapshots=deps.store.snapshots, audit=deps.store.audit
        )
    except Exception as exc:
        self.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=list(ids))
    for xero_id in fetched:
        if resource == "contacts":
            push_to_zoho.apply_async(
                args=[connection_id, resource, xero_id, batch.sync_ids.get(xero_id)], queue=queues.ZOHO_QUEUE
            )
    return len(fetched)


@app.task(name="connector.push_to_zoho", base=ConnectorTask, bind=True)
def push_to_zoho(self, connection_id: int, resource: str, xero_id: str, sync_id: str | None = None) -> str:
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    record_type = pipeline.RECORD_TYPES[resource]
    if connection is None or connection.state != "active":
        deps.store.audit.record(
            connection_id=connection_id, record_type=record_type, record_id=xero_id, sync_id=sync_id,
            stage=stages.PARKED, detail={"reason": f"connection is {connection.state if connection else 'missing'}"},
        )
        return "parked"
    try:
        outcome = pipeline.push_contact(
            connection_id, xero_id, snapshots=deps.store.snapshots, zoho=deps.zoho_client(connection),
            links=deps.store.links, audit=deps.store.audit, sync_id=sync_id,
        )
    except (DataError, RecordRejected) as exc:
        # push_contact audits mapping errors itself; a rejected account is audited here.
        if isinstance(exc, RecordRejected):
            deps.store.audit.record(
                connection_id=connection_id, record_type=record_type, record_id=xero_id, sync_id=sync_id,
                stage=stages.FAILED, detail={"reason": str(exc), "error_code": exc.code, "details": exc.details},
            )
        raise
    except Exception as exc:
        self.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=[xero_id])
    return outcome.zoho_account_id


@app.task(name=queues.INGEST_ZOHO_NOTIFICATION, base=ConnectorTask, bind=True)
def ingest_zoho_notification(self, connection_id: int, notification: dict) -> int:
    """Record a Zoho change; writing it back to Xero comes with the two-way sync."""
    deps = get_deps()
    module = str(notification.get("module", ""))
    for record_id in notification.get("ids", []):
        deps.store.audit.record(
            connection_id=connection_id, record_type=module, record_id=str(record_id),
            direction="zoho_to_xero", stage=stages.RECEIVED,
            detail={"operation": notification.get("operation"), "channel_id": notification.get("channel_id")},
        )
    return len(notification.get("ids", []))


@app.task(name="connector.refresh_tokens", base=ConnectorTask, bind=True)
def refresh_tokens(self) -> int:
    """Refresh every connection's tokens ahead of expiry (the managers skip fresh ones)."""
    deps = get_deps()
    refreshed = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        for tokens in (deps.xero_tokens(connection.id), deps.zoho_tokens(connection.id)):
            try:
                tokens.access_token()
                refreshed += 1
            except NeedsReauth as exc:
                deps.store.connections.set_state(connection.id, "needs_reauth", str(exc))
                log.error("tokens.needs_reauth", extra={"connection_id": connection.id})
            except TransientError:
                log.warning("tokens.refresh_deferred", extra={"connection_id": connection.id})
    return refreshed


@app.task(name="connector.replay", base=ConnectorTask, bind=True)
def replay(self, connection_id: int, resource: str, xero_ids: list[str]) -> int:
    """Re-run a past or failed sync from a fresh fetch (the same path a webhook takes)."""
    deps = get_deps()
    sync_ids = {xero_id: pipeline.new_sync_id() for xero_id in xero_ids}
    for xero_id, sync_id in sync_ids.items():
        deps.store.audit.record(
            connection_id=connection_id, record_type=pipeline.RECORD_TYPES[resource], record_id=xero_id,
            sync_id=sync_id, stage=stages.RECEIVED, detail={"source": "replay"},
        )
    fetch_xero_records.apply_async(args=[connection_id, resource, list(xero_ids), sync_ids], queue=queues.XERO_QUEUE)
    return len(xero_ids)
