"""Zoho-side tasks (queue "zoho"): write fetched Xero records into Zoho; take Zoho notifications in.

Pushes batch ACROSS records: ``push_to_zoho`` adds its ids to a per-(connection, resource) buffer in
Redis and one ``flush_zoho_buffer`` a moment later takes up to 100 at a time, so a burst of small
webhook deliveries becomes a few 100-record upserts. A batch of 100 or more is pushed at once.
"""

from __future__ import annotations

import logging

from connector import logs, queues
from connector.pipeline import from_zoho, to_zoho, xero_in
from connector.pipeline.common import RECORD_TYPES
from connector.record_locks import RecordLocks
from connector.zoho.client import MAX_RECORDS_PER_WRITE
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps

log = logging.getLogger(__name__)

BUFFER_LINGER_SECONDS = 0.5  # how long the first id of a burst waits for company
MAX_RECORD_RETRIES = 5  # per-record retries of Zoho's retryable 207 codes, then dead-lettered
_TAKE_SCRIPT = """
local taken = {}
local all = redis.call('HGETALL', KEYS[1])
local limit = tonumber(ARGV[1]) * 2
for i = 1, math.min(#all, limit), 2 do
  taken[#taken + 1] = all[i]
  taken[#taken + 1] = all[i + 1]
  redis.call('HDEL', KEYS[1], all[i])
end
return taken
"""


def _buffer_key(connection_id: int, resource: str) -> str:
    return f"mlc:zoho-buffer:{connection_id}:{resource}"


def _flush_flag(connection_id: int, resource: str) -> str:
    return f"mlc:zoho-buffer-flush:{connection_id}:{resource}"


@app.task(name="connector.push_to_zoho", base=ConnectorTask, bind=True)
def push_to_zoho(self, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict | None = None,
                 buffered: bool = True, attempt: int = 0) -> int:
    """Push fetched records of one resource ("contacts", "invoices", "creditnotes", "payments")."""
    sync_ids = dict(sync_ids or {})
    if buffered and len(xero_ids) < MAX_RECORDS_PER_WRITE:
        redis = get_deps().redis
        key = _buffer_key(connection_id, resource)
        redis.hset(key, mapping={xid: sync_ids.get(xid) or "" for xid in xero_ids})
        if redis.hlen(key) >= MAX_RECORDS_PER_WRITE:
            flush_zoho_buffer.apply_async(args=[connection_id, resource], queue=queues.ZOHO_QUEUE)
        elif redis.set(_flush_flag(connection_id, resource), "1", nx=True, px=60_000):
            flush_zoho_buffer.apply_async(args=[connection_id, resource], countdown=BUFFER_LINGER_SECONDS,
                                          queue=queues.ZOHO_QUEUE)
        log.info("zoho.push.buffered", extra={"records": len(xero_ids)})
        return 0
    return _push_now(self, connection_id, resource, list(xero_ids), sync_ids, attempt)


@app.task(name="connector.flush_zoho_buffer", base=ConnectorTask, bind=True)
def flush_zoho_buffer(self, connection_id: int, resource: str) -> int:
    """Take everything buffered, in batches of up to 100, each pushed by its own task."""
    redis = get_deps().redis
    redis.delete(_flush_flag(connection_id, resource))
    take = redis.register_script(_TAKE_SCRIPT)
    batches = 0
    taken: dict[str, str] = {}
    while True:
        flat = take(keys=[_buffer_key(connection_id, resource)], args=[MAX_RECORDS_PER_WRITE])
        if not flat:
            logs.bind(**logs.one_trip(list(taken), taken))  # the rest of this task's lines (one trip: its ids)
            return batches
        pairs = [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
        xero_ids, sync_ids = [x for x, _ in pairs], {x: s for x, s in pairs if s}
        taken.update({x: s for x, s in pairs})
        with logs.bound(**logs.one_trip(xero_ids, sync_ids)):
            push_to_zoho.apply_async(args=[connection_id, resource, xero_ids, sync_ids],
                                     kwargs={"buffered": False}, queue=queues.ZOHO_QUEUE)
            log.info("zoho.buffer.flushed", extra={"records": len(xero_ids)})
        batches += 1


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _push_now(task: ConnectorTask, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict,
              attempt: int) -> int:
    deps = get_deps()
    record_type = RECORD_TYPES[resource]
    connection = task.active_connection(connection_id, record_type=record_type, record_ids=xero_ids, sync_ids=sync_ids)
    if connection is None:
        return 0
    try:
        push = make_zoho_push(deps, connection, task_id=task.request.id, final_attempt=attempt >= MAX_RECORD_RETRIES)
        if resource == "contacts":
            outcome = push.contacts(xero_ids, sync_ids)
        elif resource == "invoices":
            outcome = push.invoices(xero_ids, sync_ids)
        else:
            outcome = push.related(resource, xero_ids, sync_ids)
    except Exception as exc:
        # Transient, rate limit or reauth: the whole batch is retried; records already
        # pushed are skipped by their content hash, so nothing is written twice.
        task.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=xero_ids,
                           sync_ids=sync_ids)
    if outcome.retry and attempt < MAX_RECORD_RETRIES:
        # Only the records Zoho refused with a retryable code (or waiting on their contact) go again.
        push_to_zoho.apply_async(
            args=[connection_id, resource, outcome.retry, {x: sync_ids[x] for x in outcome.retry if x in sync_ids}],
            kwargs={"buffered": False, "attempt": attempt + 1}, countdown=min(2 ** attempt, 60),
            queue=queues.ZOHO_QUEUE,
        )
    return len(outcome.written)


def make_zoho_push(deps, connection, *, task_id: str | None = None, final_attempt: bool = False) -> to_zoho.ZohoPush:
    """A ZohoPush wired to this connection's clients; refreshes read through the Xero rate governor."""

    def refresh(resource: str, ids: list[str]) -> list[str]:
        if not ids:
            return []
        batch = xero_in.FetchBatch(connection.id, resource, list(ids), {})
        return xero_in.fetch_xero_records(batch, xero=deps.xero_client(connection), snapshots=deps.store.snapshots,
                                          audit=deps.store.audit)

    org = deps.zoho_org(connection)
    return to_zoho.ZohoPush(
        connection_id=connection.id, snapshots=deps.store.snapshots, zoho=deps.zoho_client(connection),
        links=deps.store.links, audit=deps.store.audit, ledger=deps.store.write_ledger,
        locks=RecordLocks(deps.redis), config=deps.sync_config,
        invoices_enabled=org.has_invoices, refresh=refresh, task_id=task_id, org_fields=org.fields,
        final_attempt=final_attempt,
    )


@app.task(name=queues.INGEST_ZOHO_NOTIFICATION, base=ConnectorTask, bind=True)
def ingest_zoho_notification(self, connection_id: int, notification: dict) -> int:
    """A Zoho change: a person's edit of a linked Account/Contact goes to Xero; our own echo does not."""
    deps = get_deps()
    module = str(notification.get("module", ""))
    ids = [str(i) for i in notification.get("ids", [])]
    connection = self.active_connection(connection_id, record_type=module, record_ids=ids)
    if connection is None:
        return 0
    try:
        outcome = from_zoho.pull_zoho_changes(
            connection_id, module, ids, operation=str(notification.get("operation", "")),
            zoho=deps.zoho_client(connection), xero=deps.xero_client(connection, priority=1),
            snapshots=deps.store.snapshots, links=deps.store.links, audit=deps.store.audit,
            ledger=deps.store.write_ledger, config=deps.sync_config,
            detail={"channel_id": notification.get("channel_id"), "server_time": notification.get("server_time")},
        )
    except Exception as exc:
        self.retry_or_fail(exc, connection_id=connection_id, record_type=module, record_ids=ids)
    return outcome.xero_writes


@app.task(name="connector.recheck_zoho_orgs", base=ConnectorTask, bind=True)
def recheck_zoho_orgs(self) -> int:
    """Beat: re-read every active connection's Zoho org; a custom field we need that went missing is
    logged and audited once (``zoho_setup.report_org_change``). Returns the connections reported."""
    from connector.errors import ConfigError
    from connector.zoho_setup import check_org, report_org_change

    deps = get_deps()
    reported = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        try:
            check = check_org(deps.zoho_client(connection))
        except Exception as exc:  # one org's outage or lost grant must not stop the others' checks
            log.warning("zoho.org.recheck_failed connection=%s: %s", connection.id, exc)
            continue
        reported += report_org_change(connection.id, check, audit=deps.store.audit, redis=deps.redis)
        try:
            deps.remember_zoho_org(connection.id, check)  # pushes see the org as it is now
        except ConfigError:
            pass  # already reported; pushes stop with the same message until the field is back
    return reported
