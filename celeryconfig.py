"""Celery configuration: queues, routes, reliability settings and the beat schedule.

Read by ``workers.app``. Everything environment-specific comes from connector.settings, so the
same file serves the embedded default (in-process broker) and a distributed deployment (Redis).
"""

from celery.schedules import crontab
from kombu import Queue

from connector import queues
from connector.settings import Settings
from workers.startup import settings_or_exit

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
    "connector.flush_xero_buffer": {"queue": queues.XERO_QUEUE},
    "connector.poll_xero": {"queue": queues.XERO_QUEUE},
    "connector.poll_xero_connections": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.plan_xero_polls": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.probe_receiver": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.sweep_buffers": {"queue": queues.MAINTENANCE_QUEUE},
    queues.BUFFER_ZOHO_PUSH: {"queue": queues.ZOHO_QUEUE},
    queues.PUSH_RECORDS_TO_ZOHO: {"queue": queues.ZOHO_QUEUE},
    "connector.push_to_zoho": {"queue": queues.ZOHO_QUEUE},  # an older release's name (workers/zoho_tasks.py)
    "connector.flush_zoho_buffer": {"queue": queues.ZOHO_QUEUE},
    queues.INGEST_ZOHO_NOTIFICATION: {"queue": queues.ZOHO_QUEUE},
    "connector.refresh_tokens": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.renew_zoho_channels": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.resume_parked_work": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.replay": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.replay_failed": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.backfill_step": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.resume_backfills": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.recheck_zoho_orgs": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.recompute_account_money": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.recompute_deal_money": {"queue": queues.MAINTENANCE_QUEUE},
    "connector.prune_audit_trail": {"queue": queues.MAINTENANCE_QUEUE},
}

# A task is acknowledged only after it finished, and requeued if its worker dies mid-way.
# Safe because every task takes ids, re-reads state and is idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_connection_retry_on_startup = True
task_publish_retry = True

worker_hijack_root_logger = False
worker_send_task_events = True  # Flower shows tasks live
task_send_sent_event = True

# When each job last ran, kept in CONNECTOR_DATA_DIR (not the working directory); `--schedule` overrides it.
beat_scheduler = "workers.beat_schedule:DataDirScheduler"


def time_limits(settings: Settings) -> dict:
    """The task time limits. Redis transport: a message delivered but not acknowledged within the
    visibility timeout is delivered again. That is how the work of a killed worker parent comes back, so
    it is minutes, not an hour. Two consequences keep it safe: no countdown/ETA may come near it (an ETA
    message waits unacknowledged in the worker and would be delivered twice; workers.base.max_broker_countdown
    caps every countdown below it and longer waits are parked in the database), and no task may run that
    long (these limits kill a stuck task first, so it is never redelivered while still running). All three
    derive from CELERY_VISIBILITY_TIMEOUT (default 300 s): Settings.task_time_limit and friends."""
    return {"task_time_limit": settings.task_time_limit, "task_soft_time_limit": settings.task_soft_time_limit}


def settings_config(settings: Settings) -> dict:
    """Everything here that depends on the settings (the rest is the same for every deployment)."""
    return {
        "broker_url": settings.broker_url,
        **time_limits(settings),
        "broker_transport_options": (
            # The in-process transport polls; a short interval keeps the embedded chain snappy.
            {"polling_interval": 0.02}
            if settings.broker_url.startswith("memory://")
            else {"visibility_timeout": settings.visibility_timeout}
        ),
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "beat_schedule": {
            # Xero access tokens live 30 minutes and Zoho's an hour; refreshing every 5 minutes with a
            # 10-minute margin means no call ever waits on a refresh.
            "refresh-tokens": {"task": "connector.refresh_tokens", "schedule": 300.0},
            # Channels live six days and are renewed two days ahead; checking every 30 minutes also
            # catches a channel Zoho dropped (then re-created and its gap reconciled).
            "renew-zoho-channels": {"task": "connector.renew_zoho_channels", "schedule": 1800.0},
            # Parked work whose wait is over (a reconnect, a limit's reset, an outage's backoff) goes back
            # to the queues; a reconnect also resumes its connection's work at once.
            "resume-parked-work": {"task": "connector.resume_parked_work", "schedule": 60.0},
            # Buffers whose flush was lost (its task, or a worker holding a lease) are flushed again.
            "sweep-buffers": {"task": "connector.sweep_buffers", "schedule": settings.sweep_interval},
            # Scheduled Xero work is planned, not fixed: every minute the schedule (connector/xero_schedule.py)
            # says per organisation whether a catch-up poll (webhooks missed something, or the rare safety
            # poll) or a payment poll (adaptive) is due, and the budget planner grants each page within the
            # day's share. At the sweep hour the contact consistency check runs where it is due (weekly); a
            # crontab, so a restart or deploy does not restart its clock.
            "xero-plan-polls": {"task": "connector.plan_xero_polls", "schedule": 60.0},
            # The receiver probe (connector/receiver_probe.py): GET the public /healthz, the route Xero delivers
            # to. A receiver back after an outage raises a catch-up for every connection (a delivery Xero gave up
            # on is seen no other way when nothing was written back meanwhile); one unreachable for
            # CONNECTOR_ALERT_SILENCE is an alert. No Xero call; nothing is probed in the embedded mode or with
            # CONNECTOR_RECEIVER_PROBE=off.
            # A probe that waited past the next one's time is dropped (expires): a backlog says nothing now.
            "probe-receiver": {"task": "connector.probe_receiver", "schedule": 60.0, "options": {"expires": 55.0}},
            "xero-full-sweep": {"task": "connector.poll_xero_connections",
                                "schedule": crontab(minute=7, hour=settings.xero_sweep_hour),
                                "kwargs": {"full_sweep": True}},
            # Backfills waiting for their daily budget, or whose worker died mid-page, go on from their
            # checkpoint.
            "resume-backfills": {"task": "connector.resume_backfills", "schedule": 60.0},
            # Workers trust their read of a Zoho org for ZOHO_ORG_TTL; this re-reads every org as often and
            # reports (log + audit, once) a custom field someone deleted, before pushes start failing on it.
            "recheck-zoho-orgs": {"task": "connector.recheck_zoho_orgs", "schedule": settings.zoho_org_ttl},
            # Accounts' money figures come from stored snapshots and are recomputed whenever a customer's
            # documents change; once a day, just after the UTC date turns, for what only time changes
            # (an invoice falling overdue). No Xero call.
            "recompute-account-money": {"task": "connector.recompute_account_money",
                                        "schedule": crontab(minute=2, hour=0)},
            # Deals' figures likewise (connector/pipeline/deals.py): recomputed whenever an invoice of theirs
            # changes, and daily for overdue. No Xero call; unchanged Deals are not written.
            "recompute-deal-money": {"task": "connector.recompute_deal_money", "schedule": crontab(minute=4, hour=0)},
            # The audit trail keeps CONNECTOR_AUDIT_DAYS of history; hourly batches keep each delete short.
            "prune-audit-trail": {"task": "connector.prune_audit_trail", "schedule": 3600.0},
        },
    }


# Celery reads its configuration as this module's attributes, once, at start: from the environment.
# A malformed value stops every process here, in one line naming the variable. workers.deps.configure()
# applies the time limits of the settings it is given to the app.
_config = settings_config(settings_or_exit())
broker_url = _config["broker_url"]
task_time_limit = _config["task_time_limit"]
task_soft_time_limit = _config["task_soft_time_limit"]
broker_transport_options = _config["broker_transport_options"]
beat_schedule_filename = _config["beat_schedule_filename"]
beat_schedule = _config["beat_schedule"]
