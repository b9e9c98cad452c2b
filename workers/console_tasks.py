"""What the console's "Connect and fit" page asks for (queue "maintenance"): a fit report built and stored
(connector/fit_report.py), and a backfill started as `connector backfill ID --detach` starts it. Both are harmless
to run twice: a newer report replaces the older; starting a running backfill resumes it from its checkpoints with
a new chain of steps, which supersedes the old one (connector/store/backfills.py)."""

from __future__ import annotations

import logging

from connector import queues
from connector.backfill import RESOURCES, chain_start
from connector.fit_report import FitReports, build_fit_report
from workers.app import app
from workers.backfill_tasks import send_step
from workers.base import ConnectorTask
from workers.deps import get_deps

log = logging.getLogger(__name__)


@app.task(name=queues.FIT_CHECK, base=ConnectorTask)
def fit_check(connection_id: int) -> str:
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    if connection is None:
        return "unknown"
    report = build_fit_report(deps, connection, now=deps.store.clock.now())
    FitReports(deps.redis).save(report)
    organisation = report.get("organisation") or {}
    log.info("console.fit_checked connection=%s xero_ok=%s zoho_ok=%s xero_plan=%s base_currency=%s", connection_id,
             report["xero"]["ok"], report["zoho"]["ok"], organisation.get("plan_class"), organisation.get("base_currency"))
    return "checked"


@app.task(name=queues.START_BACKFILL, base=ConnectorTask)
def start_backfill(connection_id: int) -> str:
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    if connection is None or connection.state != "active":
        log.warning("console.backfill_not_started connection=%s: not an active connection; reconnect it first",
                    connection_id)
        return "inactive"
    resources = list(RESOURCES)
    deps.store.backfills.start(connection_id, resources, since=None, calls_per_day=None)
    expect = chain_start(deps.store.backfills, connection_id, resources)
    if expect is not None:  # None: another sender took the backfill over meanwhile, and carries it on
        send_step(connection_id, expect)
    log.info("console.backfill_started connection=%s", connection_id)
    return "started"
