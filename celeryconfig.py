"""Celery configuration: queues, routes, reliability settings and the beat schedule.

Read by ``workers.app``. Everything environment-specific comes from connector.settings, so the
same file serves the embedded default (in-process broker) and a distributed deployment (Redis).
"""

from kombu import Queue

from connector import queues
from connector.settings import Settings

_settings = Settings.from_env()

broker_url = _settings.broker_url
# Results are not used: tasks report through the audit trail, not return values.
result_backend = None
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_queues = (
    Queue(queues.XERO_QUEUE),
    Queue(queues.ZOHO_QUEUE),
    Queue(queues.MAINTENANCE_QUEUE),
)
task_default_queue = queues.MAINTENANCE_QUEUE
task_routes = {
    queues.INGEST_XERO_EVENTS: {"queue": queues.XERO_QUEUE},
    "connector.fetch_xero_records": {"queue": queues.XERO_QUEUE},
    "connector.push_to_zoho": {"queue": queues.ZOHO_QUEUE},
    queues.INGEST_ZOHO_NOTIFICATION: {"queue": queues.ZOHO_QUEUE},
    "connector.refresh_tokens": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.replay": {"queue": queues.MAINTENANCE_QUEUE},
}

# A task is acknowledged only after it finished, and requeued if its worker dies mid-way.
# Safe because every task takes ids, re-reads state and is idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Rate-limited tasks come back within seconds, far inside the visibility timeout, so a
# redelivery never races a countdown (Redis transport: a task unacked this long is redelivered).
broker_transport_options = (
    # The in-process transport polls; a short interval keeps the embedded chain snappy.
    {"polling_interval": 0.02}
    if _settings.broker_url.startswith("memory://")
    else {"visibility_timeout": 3600}
)
broker_connection_retry_on_startup = True
task_publish_retry = True

worker_hijack_root_logger = False
worker_send_task_events = True  # Flower shows tasks live
task_send_sent_event = True

beat_schedule = {
    # Xero access tokens live 30 minutes and Zoho's an hour; refreshing every 5 minutes with a
    # 10-minute margin means no call ever waits on a refresh.
    "refresh-tokens": {"task": "connector.refresh_tokens", "schedule": 300.0},
}
