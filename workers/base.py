"""The one retry policy every task follows, and the checks they share.

Every task takes ids, re-reads state and is idempotent, which is what makes ``acks_late``
safe. Errors map to one policy: RateLimited → back to the queue after the limit's own
countdown (a worker never sleeps on a limit); TransientError → exponential backoff up to
``max_retries``; NeedsReauth → the connection is marked and the work parked;
DataError / RecordRejected / NotFound → audited as failed, not retried.
"""

from __future__ import annotations

import logging
import random

from celery import Task

from connector.connect import mark_needs_reauth
from connector.errors import DataError, NeedsReauth, NotFound, RateLimited, RecordRejected, TransientError
from connector.pipeline.common import RECORD_TYPES
from connector.store import audit as stages
from connector.store.connections import ConnectionInfo
from connector.store.parked import NEEDS_REAUTH
from workers.deps import get_deps

log = logging.getLogger(__name__)

# A rate-limit countdown longer than this is capped: the task re-checks the governor then.
MAX_RATE_LIMIT_COUNTDOWN = 300.0


class ConnectorTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = 8

    def backoff(self) -> float:
        return min(2.0 ** self.request.retries, 300.0) * random.uniform(0.8, 1.2)

    def audit_all(self, stage: str, *, connection_id: int | None, record_type: str, record_ids: list[str],
                  detail: dict, sync_ids: dict | None = None) -> None:
        audit = get_deps().store.audit
        for record_id in record_ids:
            audit.record(
                connection_id=connection_id, record_type=record_type, record_id=record_id,
                sync_id=(sync_ids or {}).get(record_id), stage=stage, detail=detail, task_id=self.request.id,
            )

    def active_connection(self, connection_id: int, *, record_type: str, record_ids: list[str],
                          sync_ids: dict | None = None) -> ConnectionInfo | None:
        """The connection if it may run; otherwise the work is audited as parked (to be replayed)."""
        connection = get_deps().store.connections.get(connection_id)
        if connection is not None and connection.state == "active":
            return connection
        state = connection.state if connection else "missing"
        if state == "needs_reauth":
            self.park_until_reconnected(connection_id, record_type, record_ids, sync_ids)
        self.audit_all(stages.PARKED, connection_id=connection_id, record_type=record_type, record_ids=record_ids,
                       detail={"reason": f"connection is {state}"}, sync_ids=sync_ids)
        return None

    def park_until_reconnected(self, connection_id: int | None, record_type: str, record_ids: list[str],
                               sync_ids: dict | None) -> None:
        """Xero records wait durably for the reconnect (issue 4); connector.resume_parked_work re-queues them."""
        resource = {kind: name for name, kind in RECORD_TYPES.items()}.get(record_type)
        if connection_id is not None and resource and record_ids:
            get_deps().store.parked.park(connection_id, resource, list(record_ids), reason=NEEDS_REAUTH,
                                         sync_ids=sync_ids)

    def retry_or_fail(self, exc: Exception, *, connection_id: int | None, record_type: str, record_ids: list[str],
                      sync_ids: dict | None = None):
        """Decide what an error means for this task; always raises (Retry or the error)."""
        audit = dict(connection_id=connection_id, record_type=record_type, record_ids=record_ids, sync_ids=sync_ids)
        if isinstance(exc, NeedsReauth):
            if connection_id is not None:
                mark_needs_reauth(get_deps().store, connection_id, str(exc))  # logs once, with what to do
            self.park_until_reconnected(connection_id, record_type, record_ids, sync_ids)
            self.audit_all(stages.PARKED, detail={"reason": str(exc)}, **audit)
            raise exc
        if isinstance(exc, (DataError, RecordRejected, NotFound)):
            detail = {"reason": str(exc), "error": type(exc).__name__}
            if isinstance(exc, RecordRejected):
                detail.update(error_code=exc.code, details=exc.details)
            self.audit_all(stages.FAILED, detail=detail, **audit)
            raise exc
        if isinstance(exc, TransientError) and self.request.retries < self.max_retries:
            if isinstance(exc, RateLimited):
                countdown = min(exc.retry_after, MAX_RATE_LIMIT_COUNTDOWN) + random.uniform(0, 0.5)
            else:
                countdown = self.backoff()
            self.audit_all(stages.RETRYING, detail={
                "reason": str(exc), "attempt": self.request.retries + 1, "countdown": round(countdown, 2)}, **audit)
            raise self.retry(exc=exc, countdown=countdown)
        self.audit_all(stages.FAILED, detail={
            "reason": str(exc), "error": type(exc).__name__, "attempts": self.request.retries + 1}, **audit)
        raise exc
