"""Xero-side tasks (queue "xero"): turn webhook events into fetched snapshots, then hand over to Zoho."""

from __future__ import annotations

from connector import queues
from connector.pipeline import xero_in
from connector.pipeline.common import RECORD_TYPES
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps


@app.task(name=queues.INGEST_XERO_EVENTS, base=ConnectorTask, bind=True)
def ingest_xero_events(self, events: list[dict]) -> int:
    deps = get_deps()
    batches = xero_in.group_xero_events(events, connections=deps.store.connections, audit=deps.store.audit)
    for batch in batches:
        fetch_xero_records.apply_async(
            args=[batch.connection_id, batch.resource, batch.ids, batch.sync_ids], queue=queues.XERO_QUEUE
        )
    return len(batches)


@app.task(name="connector.fetch_xero_records", base=ConnectorTask, bind=True)
def fetch_xero_records(self, connection_id: int, resource: str, ids: list[str], sync_ids: dict | None = None) -> int:
    from workers.zoho_tasks import push_to_zoho

    deps = get_deps()
    record_type = RECORD_TYPES[resource]
    sync_ids = dict(sync_ids or {})
    connection = self.active_connection(connection_id, record_type=record_type, record_ids=ids, sync_ids=sync_ids)
    if connection is None:
        return 0
    batch = xero_in.FetchBatch(connection_id, resource, list(ids), sync_ids)
    try:
        fetched = xero_in.fetch_xero_records(
            batch, xero=deps.xero_client(connection), snapshots=deps.store.snapshots, audit=deps.store.audit
        )
    except Exception as exc:
        self.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=list(ids),
                           sync_ids=sync_ids)
    if fetched and resource == "contacts":
        push_to_zoho.apply_async(
            args=[connection_id, resource, fetched, {i: sync_ids.get(i) for i in fetched}], queue=queues.ZOHO_QUEUE
        )
    return len(fetched)
