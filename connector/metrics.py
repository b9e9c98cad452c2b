"""Prometheus metrics: per-process event counters, and gauges of shared state read at scrape time.

Two kinds, kept apart on purpose:

- **Events** (records synced/skipped/failed/parked, the webhook-to-Zoho delay, Xero and Zoho calls,
  webhooks accepted) happen in one process each. gunicorn workers and Celery prefork children are
  separate processes, so each writes its values to files in its group's folder and a scrape adds them up
  (prometheus_client's multiprocess mode). The process that owns the group (the gunicorn master, the Celery
  worker's main process) makes the folder, empty, before its children start: ``start_process_group``.
- **Shared state** (Xero day budget left, queue depths, token and channel expiry, parked records) lives in
  Redis and the database. It is no process's event, so ``SharedStateCollector`` reads it when scraped:
  any host's /metrics reports the same, right values.

Labels stay bounded: a connection id, a record type, a stage, a call purpose, a status class; never a
record id. Recording a metric never breaks the work it describes: a failure is logged and dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client.core import GaugeMetricFamily

from connector.pipeline.common import webhook_received_at

if TYPE_CHECKING:  # connector.http imports the store, whose audit trail imports this module
    from connector.http import ResponseSeen

log = logging.getLogger("connector.metrics")

# The audit stages that are a record's outcome, and the name each has as a metric.
OUTCOME_METRIC_NAMES = {"written": "synced", "skipped": "skipped", "failed": "failed", "parked": "parked"}

RECORD_OUTCOMES = {
    stage: Counter(f"connector_records_{name}", f"Records whose sync reached the audit stage '{stage}'",
                   ["connection", "type", "direction"])
    for stage, name in OUTCOME_METRIC_NAMES.items()
}
# Webhook deliveries are seconds apart from their write when all is well; a parked record can take hours.
WEBHOOK_TO_ZOHO_SECONDS = Histogram(
    "connector_webhook_to_zoho_seconds",
    "From the receiver accepting a Xero webhook to its record's Zoho write (the 'written' audit row)",
    ["connection", "type"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600))
XERO_CALLS = Counter("connector_xero_calls", "Xero API responses, by call purpose and status class",
                     ["connection", "purpose", "status"])
ZOHO_CALLS = Counter("connector_zoho_calls", "Zoho API responses, by status class", ["connection", "status"])
WEBHOOK_EVENTS = Counter("connector_webhook_events_accepted",
                         "Webhook events the receiver verified and queued (Xero: events of a delivery; Zoho: "
                         "notifications)", ["vendor"])

# What the shared-state collector reports; listed so the docs and the alert rules can be checked against it.
SHARED_GAUGES = (
    "connector_shared_state_up", "connector_connection_active", "connector_xero_day_limit",
    "connector_xero_day_budget_remaining", "connector_queue_depth", "connector_token_expiry_seconds",
    "connector_zoho_channel_expiry_seconds", "connector_parked_records", "connector_receiver_reachable",
)


def connection_label(connection_id: int | None) -> str:
    # A webhook of a tenant that is not connected yet has no connection.
    return "none" if connection_id is None else str(connection_id)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def record_outcomes(rows: Iterable[Mapping]) -> None:
    """Count audit rows that are a record's outcome (written, skipped, failed, parked), once stored; and for
    each record written to Zoho on a trip a webhook started, the time since the receiver accepted it (its
    sync id carries it: connector/pipeline/common.py)."""
    try:
        for row in rows:
            counter = RECORD_OUTCOMES.get(row["stage"])
            if counter is None:
                continue
            connection = connection_label(row["connection_id"])
            counter.labels(connection, row["record_type"], row["direction"]).inc()
            if row["stage"] == "written" and row["direction"] == "xero_to_zoho":
                written_at = row["created_at"].timestamp()
                received_at = webhook_received_at(row["sync_id"], now=written_at)
                if received_at is not None:
                    WEBHOOK_TO_ZOHO_SECONDS.labels(connection, row["record_type"]).observe(written_at - received_at)
    except Exception:
        log.exception("metrics.record_outcomes_failed")


def webhook_events_accepted(vendor: str, count: int = 1) -> None:
    try:
        WEBHOOK_EVENTS.labels(vendor).inc(count)
    except Exception:
        log.exception("metrics.webhook_events_failed")


def count_api_call(seen: "ResponseSeen") -> None:
    """Every Xero and Zoho response of this process: a listener of the HTTP pipeline (registered in
    workers/deps.py, beside the day-budget ledger's)."""
    connection = connection_label(seen.connection_id)
    if seen.vendor == "xero":
        XERO_CALLS.labels(connection, seen.purpose, status_class(seen.status)).inc()
    elif seen.vendor == "zoho":
        ZOHO_CALLS.labels(connection, status_class(seen.status)).inc()


# -- multiprocess mode ---------------------------------------------------------------------------------

_group_folder: Path | None = None  # this process group's folder, once its owner made it (inherited by forks)


def start_process_group(role: str, settings) -> Path:
    """Called once by the process that owns a group (the gunicorn master, the Celery worker's main process)
    before its children start; returns the folder where they all write their counters.

    ``PROMETHEUS_MULTIPROC_DIR`` set: that folder, for this group alone. Otherwise a folder of this process's
    own under ``CONNECTOR_METRICS_DIR`` (``<role>-<pid>``), so a web and a worker group on one host never
    share one; folders of the same role whose owner is gone are removed. Either way the folder is emptied:
    a restart never adds up the files of processes before it.
    """
    global _group_folder
    if settings.metrics_dir is not None:
        folder = settings.metrics_dir
    else:
        base = settings.metrics_base_dir
        folder = base / f"{role}-{os.getpid()}"
        for old in base.glob(f"{role}-*") if base.is_dir() else ():
            owner = old.name.rsplit("-", 1)[-1]
            if old != folder and owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    # prometheus_client chooses file-backed values from this variable when imported and when told to look
    # again (here). Every metric has labels, so no value exists before its first use, and the children forked
    # next inherit both.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.get_value_class()
    _group_folder = folder
    log.info("metrics.process_group", extra={"role": role, "folder": str(folder)})
    return folder


def group_folder() -> Path | None:
    """The folder of this process's group: None outside one (beat, Flower, the CLI count on their own)."""
    return _group_folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def process_exited(pid: int) -> None:
    """A child process is gone: its live-gauge files stop counting (its counters stay in the sum)."""
    if _group_folder is not None:
        multiprocess.mark_process_dead(pid, str(_group_folder))


def scrape_registry(directory: Path | None, *extra) -> CollectorRegistry:
    """What one scrape reports: every process's counters (the folder's files, or this process's own
    when there is no folder), plus ``extra`` collectors (the shared state)."""
    registry = CollectorRegistry()
    if directory is not None:
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(REGISTRY)
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text format body and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_worker_metrics(port: int, directory: Path, *, address: str = "127.0.0.1"):
    """A worker host's own /metrics (its prefork children's counters, summed) on ``address``:``port``, on a
    thread; the server is returned. It has no auth, hence loopback unless the operator names an interface."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=scrape_registry(directory))
    log.info("metrics.serving", extra={"address": address, "port": port, "path": "/metrics"})
    return server


# -- shared state, read at scrape time -------------------------------------------------------------------


class SharedStateCollector:
    """Gauges of the state every process shares (Redis, the database, the broker), read when scraped.

    ``deps`` is workers.deps.Deps (or anything with its store, credentials, budget_ledger, settings). A
    scrape that cannot read them reports ``connector_shared_state_up 0`` and the counters still answer.
    """

    def __init__(self, deps, *, queue_depths=None) -> None:
        self._deps = deps
        self._queue_depths = queue_depths

    def describe(self):
        return []  # nothing read when registered: only when scraped

    def collect(self):
        up = GaugeMetricFamily("connector_shared_state_up",
                               "1 when the last scrape read Redis, the database and the broker; 0 otherwise")
        try:
            families = list(self._families())
        except Exception as exc:
            # The type only: driver messages can carry hosts and user names.
            log.warning("metrics.shared_state_unreadable", extra={"error_type": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self):
        deps = self._deps
        store = deps.store
        now: datetime = store.clock.now()
        active = GaugeMetricFamily("connector_connection_active", "1 when the connection can sync (state active)",
                                   labels=["connection"])
        limit = GaugeMetricFamily("connector_xero_day_limit", "The organisation's Xero calls a day (learned, "
                                  "configured or assumed)", labels=["connection"])
        remaining = GaugeMetricFamily("connector_xero_day_budget_remaining",
                                      "Xero calls left in the organisation's current day", labels=["connection"])
        tokens = GaugeMetricFamily("connector_token_expiry_seconds",
                                   "Seconds until the stored access token expires (negative: expired, the "
                                   "refresh is late)", labels=["connection", "system"])
        channels = GaugeMetricFamily("connector_zoho_channel_expiry_seconds",
                                     "Seconds until the connection's Zoho notification channel expires (the "
                                     "soonest, if several)", labels=["connection"])
        parked = GaugeMetricFamily("connector_parked_records", "Records parked, waiting to be re-driven",
                                   labels=["connection", "reason"])
        for c in store.connections.all():
            label = str(c.id)
            active.add_metric([label], 1 if c.state == "active" else 0)
            ledger = deps.budget_ledger
            state = ledger.limit_state(c.id)
            day_limit = ledger.day_limit(c.id, state)
            limit.add_metric([label], day_limit)
            remaining.add_metric([label], max(day_limit - ledger.used_today(c.id, state), 0))
            for system in ("xero", "zoho"):
                stored = deps.credentials.load(deps.credentials.owner_of(c.id, system), system)
                if stored is not None and stored.tokens.expires_at is not None:
                    tokens.add_metric([label, system], (stored.tokens.expires_at - now).total_seconds())
            expiries = [ch.expires_at for ch in store.channels.for_connection(deps.credentials.owner_of(c.id, "zoho"))
                        if ch.expires_at is not None]
            if expiries:
                channels.add_metric([label], (min(expiries) - now).total_seconds())
            for reason, count in store.parked.counts_by_reason(c.id).items():
                parked.add_metric([label, reason], count)
        yield from (active, limit, remaining, tokens, channels, parked)
        probe_off = getattr(deps, "receiver_probe_off", "not wired")
        if probe_off is None:  # the receiver probe (connector/receiver_probe.py), where it runs
            from connector.receiver_probe import NOT_PROBED_YET, REACHABLE

            probed = deps.receiver_probe.load()
            if probed.state != NOT_PROBED_YET:
                receiver = GaugeMetricFamily("connector_receiver_reachable", "1 when the receiver answered its last "
                                             "probe at the public URL's /healthz, 0 while it does not")
                receiver.add_metric([], 1 if probed.state == REACHABLE else 0)
                yield receiver
        depths = (self._queue_depths or _broker_queue_depths)(deps.settings)
        if depths is not None:
            queues = GaugeMetricFamily("connector_queue_depth", "Messages waiting on a worker queue",
                                       labels=["queue"])
            for name, depth in sorted(depths.items()):
                queues.add_metric([name], depth)
            yield queues


def _broker_queue_depths(settings):
    from connector.status import queue_depths

    return queue_depths(settings)
