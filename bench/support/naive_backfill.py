"""The naive import the backfill benchmark compares against: every page listed into memory first,
then everything written and handed on at once.

The real Celery app with one task swapped: started exactly like the Procfile's worker (``-A
bench.support.naive_backfill`` instead of ``-A workers.app``), it answers the backfill step's task
name, so `connector backfill` is unchanged, and the Zoho pushes are the real ones. It lists with
the same client, page size and order and advances the same checkpoint per page (so the benchmark
sees how much it holds); it only differs in keeping every page until the last is listed.
"""

from __future__ import annotations

from connector.backfill import ORDER, PAGE_SIZE, RESOURCES
from connector.mapping.xero_values import parse_xero_date
from connector.pipeline.common import ID_FIELDS, RECORD_TYPES, new_sync_id
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.store import audit as stages
from workers.app import app
from workers.backfill_tasks import BACKFILL_STEP, push_pages
from workers.base import ConnectorTask
from workers.deps import get_deps

app.loader.import_default_modules()  # the real tasks first, so the swap below is not undone
app.tasks.unregister(BACKFILL_STEP)


@app.task(name=BACKFILL_STEP, base=ConnectorTask, bind=True)
def naive_backfill(self, connection_id: int, resource: str | None = None, version: int | None = None) -> int:
    # resource and version: the chain's expectation that `connector backfill` sends with the first step
    # (workers/backfill_tasks.py); an import that lists everything in one task has no chain to check.
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    xero = deps.xero_client(connection, priority=PRIORITY_BACKFILL)
    pending = sorted((c for c in deps.store.backfills.for_connection(connection_id) if c.state != "done"),
                     key=lambda c: RESOURCES.index(c.resource))
    listed: dict[str, list[dict]] = {}
    for checkpoint in pending:
        records = listed[checkpoint.resource] = []
        page_number = 1
        while True:
            page = xero.list_records(checkpoint.resource, modified_since=checkpoint.since, page=page_number,
                                     page_size=PAGE_SIZE, order=ORDER)
            records += page.items
            done = not page.has_more or not page.items
            deps.store.backfills.advance(checkpoint, anchor=checkpoint.since, page=page_number + 1,
                                         records=len(page.items), remaining=None, done=done)
            checkpoint = deps.store.backfills.get(connection_id, checkpoint.resource)
            if done:
                break
            page_number += 1
    for resource, records in listed.items():
        id_field = ID_FIELDS[resource]
        rows = [(str(r[id_field]), parse_xero_date(r.get("UpdatedDateUTC"), field="UpdatedDateUTC"), r)
                for r in records]
        sync_ids = {xero_id: new_sync_id() for xero_id, _, _ in rows}
        for start in range(0, len(rows), PAGE_SIZE):  # PostgreSQL takes at most 65,535 parameters a statement
            chunk = rows[start:start + PAGE_SIZE]
            deps.store.snapshots.put_many_if_newer(connection_id, resource, chunk)
            deps.store.audit.record_many([
                dict(connection_id=connection_id, record_type=RECORD_TYPES[resource], record_id=xero_id,
                     sync_id=sync_ids[xero_id], stage=stage, detail={"source": "naive backfill"})
                for xero_id, _, _ in chunk for stage in (stages.RECEIVED, stages.FETCHED)])
        push_pages(connection_id)(resource, list(sync_ids), sync_ids)
    return sum(len(r) for r in listed.values())
