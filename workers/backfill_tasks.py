"""Backfill tasks (queue "maintenance"): one page per task, each task queueing the next, so a worker
that dies loses at most the page in flight and beat picks the chain up again (connector/backfill.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from connector.budget import Deferral
from connector.call_purpose import BACKFILL
from connector.http import call_purpose
from connector import queues
from connector.backfill import BackfillBudget, backfill_step, first_pending
from connector.errors import RateLimited
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.status import queue_depths
from connector.store.backfills import RUNNING, WAITING
from connector.zoho.client import MAX_RECORDS_PER_WRITE
from workers.app import app
from workers.base import ConnectorTask
from workers.deps import get_deps
from workers.xero_tasks import rate_limit_countdown

log = logging.getLogger(__name__)

BACKFILL_STEP = "connector.backfill_step"
# Pushes waiting in the zoho queue above which the backfill lists no further page: memory and queue
# stay bounded, and live pushes never queue behind a whole org.
MAX_ZOHO_BACKLOG = 20
BACKLOG_RECHECK_SECONDS = 2.0
# A running checkpoint not advanced for this long lost its chain (a worker died): beat restarts it.
STALE_AFTER = timedelta(minutes=5)


def budget() -> BackfillBudget:
    deps = get_deps()
    return BackfillBudget(deps.redis, clock=deps.store.clock)


def zoho_backlog(settings) -> int:
    """Pushes waiting in the zoho queue of the configured broker (Redis or RabbitMQ); 0 on the in-process one."""
    depths = queue_depths(settings, names=(queues.ZOHO_QUEUE,))
    return depths[queues.ZOHO_QUEUE] if depths else 0


def push_pages(connection_id: int):
    def on_page(resource: str, ids: list[str], sync_ids: dict[str, str]) -> None:
        for start in range(0, len(ids), MAX_RECORDS_PER_WRITE):
            chunk = ids[start:start + MAX_RECORDS_PER_WRITE]
            app.send_task(queues.PUSH_RECORDS_TO_ZOHO, args=[connection_id, resource, chunk,
                                                             {i: sync_ids[i] for i in chunk}],
                          queue=queues.ZOHO_QUEUE)
    return on_page


def planned_wait(deps, connection_id: int) -> float:
    """0.0 when the budget planner grants the backfill's next call, else the seconds until it may."""
    answer = deps.budget_planner.ask(connection_id, BACKFILL)
    return answer.retry_after if isinstance(answer, Deferral) else 0.0


@app.task(name=BACKFILL_STEP, base=ConnectorTask, bind=True)
def backfill_step_task(self, connection_id: int, resource: str | None = None, version: int | None = None) -> str:
    """One page. ``resource``/``version``: the checkpoint this step's chain expects (see backfill_step);
    None for a message queued before steps carried it."""
    deps = get_deps()
    connection = deps.store.connections.get(connection_id)
    if connection is None or connection.state != "active":
        return "inactive"  # the checkpoint holds the place; beat resumes once the connection is back
    expect = (resource, version) if resource is not None and version is not None else None
    if zoho_backlog(deps.settings) > MAX_ZOHO_BACKLOG:
        send_step(connection_id, expect, countdown=BACKLOG_RECHECK_SECONDS)
        return "backlog"
    try:
        with call_purpose(BACKFILL):
            outcome = backfill_step(connection_id, xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL),
                                    checkpoints=deps.store.backfills, budget=budget(), snapshots=deps.store.snapshots,
                                    audit=deps.store.audit, clock=deps.store.clock, on_page=push_pages(connection_id),
                                    expect=expect, plan=lambda: planned_wait(deps, connection_id))
    except RateLimited as exc:  # a minute or concurrency limit: back in moments
        raise self.retry(exc=exc, countdown=rate_limit_countdown(exc.retry_after), max_retries=None) from None
    except Exception as exc:
        self.retry_or_fail(exc, connection_id=connection_id, record_type="backfill", record_ids=[])
    if outcome.state == "page" and outcome.expect is not None:
        send_step(connection_id, outcome.expect)
    elif outcome.state == "waiting":
        log.info("backfill.waiting connection=%s resource=%s for %.0fs (daily budget)", connection_id,
                 outcome.resource, outcome.retry_after or 0)
    return outcome.state


def send_step(connection_id: int, expect: tuple[str, int] | None, **options) -> None:
    """Queue the next step of a chain, carrying the checkpoint (resource, version) it expects."""
    backfill_step_task.apply_async(args=[connection_id, *(expect or ())], queue=queues.MAINTENANCE_QUEUE, **options)


def claim_due(checkpoints, now) -> list[tuple[int, tuple[str, int]]]:
    """The backfills to go on with (budget wait over, or chain lost with a worker), each claimed:
    (connection id, the expectation its new step carries). A claim another sender won is left to it."""
    due = []
    for connection_id in sorted({c.connection_id for c in checkpoints.unfinished()}):
        checkpoint = first_pending(checkpoints, connection_id)  # the one a step works on; later ones wait
        if checkpoint is None:
            continue
        if checkpoint.state == WAITING and (checkpoint.resume_after is None or checkpoint.resume_after <= now) \
                or checkpoint.state == RUNNING and checkpoint.updated_at < now - STALE_AFTER:
            version = checkpoints.claim(checkpoint)
            if version is not None:
                due.append((connection_id, (checkpoint.resource, version)))
    return due


@app.task(name="connector.resume_backfills", base=ConnectorTask, bind=True)
def resume_backfills(self) -> int:
    """Beat: go on with backfills whose budget wait is over, or whose chain was lost with a worker."""
    deps = get_deps()
    due = claim_due(deps.store.backfills, deps.store.clock.now())
    for connection_id, expect in due:
        send_step(connection_id, expect)
    return len(due)
