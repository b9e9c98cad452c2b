"""Storing one page of records listed from Xero: what the delta poll and the backfill share.

Listed records are complete (lists always pass ``page``, so invoices keep their LineItems), so they
go straight into snapshots with no second GET. A page is read, written and audited in batches: one
snapshot probe, one newest-wins upsert (``put_many_if_newer``) and one audit write, however many
records it holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from connector.json_codec import dumps_for_storage
from connector.mapping.xero_values import parse_xero_date
from connector.pipeline.common import ID_FIELDS, RECORD_TYPES, new_sync_id
from connector.store import audit as stages

# Whether a listed record is offered for storing, given its stored snapshot (None when there is none).
Wanted = Callable[[object, datetime, dict], bool]


def is_known(previous, updated: datetime, record: dict) -> bool:
    """True when the stored snapshot is newer than ``record``, or the same version with the same content."""
    if previous is None or previous.source_updated_at < updated:
        return False
    if previous.source_updated_at > updated:
        return True
    # The snapshot column gives Decimals back as strings: compare the record as it would be stored.
    return previous.payload == json.loads(dumps_for_storage(record))


@dataclass
class StoredPage:
    handed: dict[str, str]  # xero id → sync id of each record stored, in listing order
    updated: list[datetime]  # each listed record's UpdatedDateUTC, in listing order

    @property
    def newest(self) -> datetime | None:
        return max(self.updated, default=None)

    @property
    def oldest(self) -> datetime | None:
        return min(self.updated, default=None)


def store_listed_page(connection_id: int, resource: str, records: list[dict], *, snapshots, audit, source: str,
                      wanted: Wanted) -> StoredPage:
    """Store the records of one listed page that ``wanted`` offers, newest wins; audit those stored.

    Each stored record gets a sync id and its "received" and "fetched" stages (detail: ``source`` and
    its UpdatedDateUTC). One that a concurrent webhook fetch overtook with a newer version between the
    probe and the write is not stored, so it is neither audited nor handed on here.
    """
    id_field, record_type = ID_FIELDS[resource], RECORD_TYPES[resource]
    listed = [(str(record[id_field]), parse_xero_date(record.get("UpdatedDateUTC"), field="UpdatedDateUTC"), record)
              for record in records]
    page = StoredPage(handed={}, updated=[updated for _, updated, _ in listed])
    previous = snapshots.get_many(connection_id, resource, [xero_id for xero_id, _, _ in listed])
    offered = [(xero_id, updated, record) for xero_id, updated, record in listed
               if wanted(previous.get(xero_id), updated, record)]
    stored = snapshots.put_many_if_newer(connection_id, resource, offered) if offered else set()
    entries = []
    for xero_id, updated, _ in offered:
        if xero_id not in stored or xero_id in page.handed:
            continue
        sync_id = page.handed[xero_id] = new_sync_id()
        entries += [dict(connection_id=connection_id, record_type=record_type, record_id=xero_id, sync_id=sync_id,
                         stage=stage, detail={"source": source, "updated_utc": updated.isoformat()})
                    for stage in (stages.RECEIVED, stages.FETCHED)]
    audit.record_many(entries)
    return page
