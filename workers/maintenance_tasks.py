"""Maintenance tasks (queue "maintenance"): token refresh ahead of expiry, replays."""

from __future__ import annotations

import logging

from connector import queues
from connector.errors import NeedsReauth, TransientError
from connector.pipeline.common import RECORD_TYPES, new_sync_id
from connector.store import audit as stages
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps

log = logging.getLogger(__name__)


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
    from workers.xero_tasks import fetch_xero_records

    deps = get_deps()
    sync_ids = {xero_id: new_sync_id() for xero_id in xero_ids}
    for xero_id, sync_id in sync_ids.items():
        deps.store.audit.record(
            connection_id=connection_id, record_type=RECORD_TYPES[resource], record_id=xero_id,
            sync_id=sync_id, stage=stages.RECEIVED, detail={"source": "replay"},
        )
    fetch_xero_records.apply_async(args=[connection_id, resource, list(xero_ids), sync_ids], queue=queues.XERO_QUEUE)
    return len(xero_ids)
