"""Queue and task names shared by the receiver (which enqueues) and the workers (which run).

Plain strings, so the receiver can enqueue by name without importing the task code.
"""

XERO_QUEUE = "xero"  # fetches from Xero: bounded by the Xero rate governor
ZOHO_QUEUE = "zoho"  # writes to Zoho, and Zoho notifications in
MAINTENANCE_QUEUE = "maintenance"  # token refresh, channel renewal, polls, replays

# kombu's in-process broker (the embedded default), with a host named so kombu does not warn of its absence.
EMBEDDED_BROKER_URL = "memory://localhost/"

# args: [body: str (the webhook body as received), sync_ids: list[str] (one per event)];
# the task still takes [events: list[dict]] from a receiver older than that.
INGEST_XERO_EVENTS = "connector.ingest_xero_events"
# args: [connection_id: int, notification: dict (channel_id, module, ids, operation, sync_id)]
INGEST_ZOHO_NOTIFICATION = "connector.ingest_zoho_notification"
# Fetched Xero records on their way to Zoho; both take [connection_id: int, resource: str ("contacts",
# "invoices", "creditnotes", "payments"), xero_ids: list[str], sync_ids: dict[str, str] (xero id -> sync id)].
# Joins the Zoho buffer (flushed a moment later); 100 ids or more are pushed at once.
BUFFER_ZOHO_PUSH = "connector.buffer_zoho_push"
# Writes now; kwargs attempt: int (retries of Zoho's retryable refusals so far), parked_attempts: int.
PUSH_RECORDS_TO_ZOHO = "connector.push_records_to_zoho"
# Replays (workers/maintenance_tasks.py), enqueued by the operator console too.
# args: [connection: int, record: str (any spelling of the resource), ids: list[str], source: "xero" | "snapshot"]
REPLAY = "connector.replay"
# args: [connection: int | None, since: str | None ("24h", ISO), record: str | None, error: str | None, source, limit]
REPLAY_FAILED = "connector.replay_failed"
# The console's fit report of one connection (connector/fit_report.py), stored for its page. args: [connection_id]
FIT_CHECK = "connector.fit_check"
# The console's "start the backfill": what `connector backfill ID --detach` does. args: [connection_id]
START_BACKFILL = "connector.start_backfill"
