"""Zoho-side tasks (queue "zoho"): write fetched Xero records into Zoho; take Zoho notifications in."""

from __future__ import annotations

from connector import queues
from connector.errors import DataError, RecordRejected
from connector.pipeline import to_zoho
from connector.pipeline.common import RECORD_TYPES
from connector.store import audit as stages
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps


@app.task(name="connector.push_to_zoho", base=ConnectorTask, bind=True)
def push_to_zoho(self, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict | None = None) -> int:
    """Push a batch of fetched records; a record that fails is audited and does not hold up the rest."""
    deps = get_deps()
    record_type = RECORD_TYPES[resource]
    sync_ids = dict(sync_ids or {})
    connection = self.active_connection(connection_id, record_type=record_type, record_ids=xero_ids, sync_ids=sync_ids)
    if connection is None:
        return 0
    zoho = deps.zoho_client(connection)
    pushed = 0
    for position, xero_id in enumerate(xero_ids):
        try:
            to_zoho.push_contact(
                connection_id, xero_id, snapshots=deps.store.snapshots, zoho=zoho,
                links=deps.store.links, audit=deps.store.audit, sync_id=sync_ids.get(xero_id),
            )
            pushed += 1
        except DataError:
            pass  # push_contact audited the mapping error; retrying cannot fix the data
        except RecordRejected as exc:
            self.audit_all(stages.FAILED, connection_id=connection_id, record_type=record_type, record_ids=[xero_id],
                           detail={"reason": str(exc), "error_code": exc.code, "details": exc.details},
                           sync_ids=sync_ids)
        except Exception as exc:
            # Transient, rate limit or reauth: the whole batch is retried; records already
            # pushed are skipped by their content hash, so nothing is written twice.
            self.retry_or_fail(exc, connection_id=connection_id, record_type=record_type,
                               record_ids=xero_ids[position:], sync_ids=sync_ids)
    return pushed


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
