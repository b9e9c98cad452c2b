"""The naive configuration the pipeline benchmark compares against: one task per event, one fetch
and one write per record, no buffers and no batching.

A Celery app of its own, started exactly like the Procfile's worker (``-A bench.support.naive``
instead of ``-A workers.app``). It answers the receiver's task name, so the receiver is unchanged,
and reuses the real pipeline's steps (fetch, snapshot, map, upsert, id links, audit trail) on one
record at a time, the way webhook-driven connectors usually work.
"""

from __future__ import annotations

from celery import Celery

from connector import queues
from connector.pipeline import xero_in
from connector.pipeline.common import RECORD_TYPES, XERO_CATEGORIES
from connector.store import audit as stages
from connector.xero.webhook_body import delivered_events
from workers.base import ConnectorTask
from workers.deps import get_deps

app = Celery("ml_connector_naive")
app.config_from_object("celeryconfig")
NAIVE_SYNC = "bench.naive.sync_record"
app.conf.task_routes = {**app.conf.task_routes, NAIVE_SYNC: {"queue": queues.XERO_QUEUE}}


@app.task(name=queues.INGEST_XERO_EVENTS, base=ConnectorTask, bind=True)
def ingest_xero_events(self, events: list[dict] | str, sync_ids: list[str] | None = None) -> int:
    """The delivery as the receiver queues it, read like the real task reads it."""
    deps = get_deps()
    events = delivered_events(events, sync_ids)
    for event in events:
        resource = XERO_CATEGORIES.get(str(event.get("eventCategory", "")).upper())
        connection = deps.store.connections.by_tenant(str(event.get("tenantId", "")))
        if resource is None or connection is None:
            continue
        sync_id = event["sync_id"]  # the receiver's: latency runs from its received row
        deps.store.audit.record(connection_id=connection.id, record_type=RECORD_TYPES[resource],
                                record_id=event["resourceId"], sync_id=sync_id, stage=stages.RECEIVED,
                                detail={"event_type": event.get("eventType")})
        sync_record.apply_async(args=[connection.id, resource, event["resourceId"], sync_id],
                                queue=queues.XERO_QUEUE)
    return len(events)


@app.task(name=NAIVE_SYNC, base=ConnectorTask, bind=True)
def sync_record(self, connection_id: int, resource: str, xero_id: str, sync_id: str) -> int:
    from workers.zoho_tasks import make_zoho_push

    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    sync_ids = {xero_id: sync_id}
    fetched = xero_in.fetch_xero_records(xero_in.FetchBatch(connection_id, resource, [xero_id], sync_ids),
                                         xero=deps.xero_client(connection), snapshots=deps.store.snapshots,
                                         audit=deps.store.audit)
    if not fetched:
        return 0
    push = make_zoho_push(deps, connection, task_id=self.request.id)
    outcome = push.contacts(fetched, sync_ids) if resource == "contacts" else push.invoices(fetched, sync_ids)
    return len(outcome.written)
