"""The one retry policy every task follows, and the checks they share.

Every task takes ids, re-reads state and is idempotent, which is what makes ``acks_late``
safe. Errors map to one policy (``ConnectorTask.retry_or_fail``):

- NeedsReauth → the connection is marked and the work parked until a person reconnects it.
- ZohoNotConnected → the Zoho side was never connected: the work waits, parked, for that first
  connect; the connection stays active (its Xero side runs on).
- A limit whose reset is further off than a broker countdown may wait (Xero's daily budget,
  Zoho's credits) → parked in the database with ``resume_after``; the beat re-drives it.
- Transient (TransientError, RateLimited, timeouts) → back to the queue with exponential backoff
  (a rate limit: its own countdown), never longer than max_broker_countdown(); after
  BROKER_RETRIES the work is parked with a backoff growing to hours and re-driven from there.
  Nothing transient ever ends as "failed".
- Our own database, Redis or broker unreachable → retried with backoff for as long as it takes,
  whatever task it hits (``__call__``): there may be nowhere to park or audit meanwhile.
- Anything else (DataError, RecordRejected, NotFound, ApiError, a bug) → audited as failed, one
  WARNING line per record (the audit's); Celery logs our own errors then without a traceback (``throws``).

A batch that fails is split in halves (each half its own task, with the same retry count) so one
bad record never takes the others down with it: at once for a permanent error, after
SPLIT_AFTER_RETRIES for a transient one (which may well be the whole API's, not one record's).
"""

from __future__ import annotations

import logging
from typing import Callable

from celery import Task, signals
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded

from connector.backoff import backoff_delay
from connector.connect import mark_needs_reauth
from connector.errors import (
    ConfigError,
    ConnectorError,
    InvalidArgument,
    NeedsReauth,
    RateLimited,
    ZohoNotConnected,
    is_infrastructure_failure,
    is_transient,
)
from connector.parking import Parking, Redrive, park_backoff
from connector.ratelimit import problem_scope
from connector.store import audit as stages
from connector.store.connections import ConnectionInfo
from connector.store.parked import DAILY_BUDGET, NEEDS_REAUTH, OUTAGE, RATE_LIMITED, ZOHO_NOT_CONNECTED
from workers.deps import get_deps

log = logging.getLogger(__name__)


def max_broker_countdown() -> float:
    """The longest a task waits on the broker, from the current settings (configure() changes it). With
    the Redis transport a message whose countdown outlasts the visibility timeout (celeryconfig) is
    delivered twice, so it stays well below; longer waits are parked in the database and re-driven by the
    beat (connector.parking.resume_parked_work)."""
    return get_deps().settings.max_broker_countdown


# Short retries on the broker: 1, 2, 4 … 64 s (about two minutes), then the work is parked.
BROKER_RETRIES = 7
# A transient failure of a whole batch is retried whole this often before it is split.
SPLIT_AFTER_RETRIES = 2

def halves(ids: list[str]) -> tuple[list[str], list[str]]:
    middle = len(ids) // 2
    return ids[:middle], ids[middle:]


@signals.worker_init.connect
def _check_mapping_file(**_) -> None:
    """A bad mapping file stops the worker at once, with the file, line and key at fault, not at the first
    push. Connected here, not with the app (workers/app.py): the app must not import get_deps' module, which
    imports the app; every task module imports this one, and Celery imports them before worker_init."""
    from workers.startup import refuse

    try:
        get_deps().sync_config
    except ConfigError as exc:
        refuse(f"mapping file: {exc}")


class _ReportedCheck(type):
    def __instancecheck__(cls, instance) -> bool:
        return getattr(instance, "reported", False) is True


class Reported(metaclass=_ReportedCheck):
    """Matches an error already audited and logged (see ``reported``), whatever its class."""


def reported(exc: Exception) -> Exception:
    """Mark an error of ours as audited and logged; a bug (not a ConnectorError) stays unmarked."""
    if isinstance(exc, ConnectorError):
        exc.reported = True
    return exc


class ConnectorTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # retry_or_fail decides when to stop retrying (and parks instead)
    # Which way the records a task carries travel: its audit rows say so (a task option overrides it).
    direction = stages.XERO_TO_ZOHO
    # An operator's bad request, and errors retry_or_fail has audited and logged with their reason, are
    # outcomes: Celery logs them without a traceback. Anything else keeps its traceback.
    throws = (InvalidArgument, Reported)

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Reject):
            raise
        except Exception as exc:
            if not is_infrastructure_failure(exc) or self.request.called_directly or self.request.is_eager:
                raise
            countdown = self.backoff()
            log.warning("%s: database, Redis or broker unreachable; retrying in %.0f s: %s", self.name,
                        countdown, exc)
            try:
                raise self.retry(exc=exc, countdown=countdown, max_retries=None)
            except (Retry, Reject):
                raise
            except Exception:  # the broker is the one that is down: leave the message to it
                raise Reject(exc, requeue=True) from exc

    def backoff(self) -> float:
        return backoff_delay(self.request.retries or 0, base=1.0, cap=max_broker_countdown(), jitter=(0.8, 1.0))

    def audit_all(self, stage: str, *, connection_id: int | None, record_type: str, record_ids: list[str],
                  detail: dict, sync_ids: dict | None = None) -> None:
        trail = get_deps().store.audit.batch()  # one transaction for the whole batch of records
        for record_id in record_ids:
            trail.record(
                connection_id=connection_id, record_type=record_type, record_id=record_id,
                sync_id=(sync_ids or {}).get(record_id), stage=stage, detail=detail, task_id=self.request.id,
                direction=self.direction,
            )
        trail.flush()

    def active_connection(self, connection_id: int, *, record_type: str, record_ids: list[str],
                          sync_ids: dict | None = None, redrive: Redrive | None = None) -> ConnectionInfo | None:
        """The connection if it may run; otherwise the work is audited as parked (and stored, to be resumed)."""
        connection = get_deps().store.connections.get(connection_id)
        if connection is not None and connection.state == "active":
            return connection
        state = connection.state if connection else "missing"
        records = dict(connection_id=connection_id, record_type=record_type, record_ids=record_ids, sync_ids=sync_ids)
        if state == "needs_reauth":  # it waits for the reconnect; any other state: nothing to wait for
            self.parking().park(reason=NEEDS_REAUTH, redrive=redrive, detail={"reason": f"connection is {state}"},
                                **records)
        else:
            self.parking().audit_parked(detail={"reason": f"connection is {state}"}, **records)
        return None

    def parking(self) -> Parking:
        """Parks this task's work (connector.parking), with the task's name, direction and id."""
        return Parking.of(get_deps().store, by=self.name, direction=self.direction, task_id=self.request.id)

    def retry_or_fail(self, exc: Exception, *, connection_id: int | None, record_type: str, record_ids: list[str],
                      sync_ids: dict | None = None, redrive: Redrive | None = None,
                      split: Callable[[list[str], float], None] | None = None) -> None:
        """Decide what an error means for this task's work (see the module docstring).

        Raises (Retry, or the error when the work failed for good) unless the work was handed on:
        parked in the database or split into two tasks; then it returns and the task ends.
        ``split(ids, countdown)`` queues a task for part of the batch, counted as one more retry (so a
        split half that fails again is split again, and an outage still ends parked);
        ``redrive`` says how to park the work.
        """
        audit = dict(connection_id=connection_id, record_type=record_type, record_ids=record_ids, sync_ids=sync_ids)
        if isinstance(exc, ZohoNotConnected):  # an outcome of the first deployment, not an error: one line
            self.parking().park(reason=ZOHO_NOT_CONNECTED, redrive=redrive, detail={"reason": str(exc)}, **audit)
            log.warning("%s: %d %s wait for Zoho: %s", self.name, len(record_ids), record_type, exc)
            return
        if isinstance(exc, NeedsReauth):
            if connection_id is not None:
                mark_needs_reauth(get_deps().store, connection_id, str(exc), exc.system)  # logs once, with what to do
            self.parking().park(reason=NEEDS_REAUTH, redrive=redrive, detail={"reason": str(exc)}, **audit)
            raise reported(exc) if connection_id is not None else exc
        if is_infrastructure_failure(exc):
            raise exc  # __call__ retries it for as long as our own services are down
        transient = is_transient(exc) or isinstance(exc, SoftTimeLimitExceeded)
        retries = self.request.retries or 0
        if transient and isinstance(exc, RateLimited) and exc.retry_after > max_broker_countdown() and redrive:
            reason = DAILY_BUDGET if problem_scope(exc.problem) == "day" else RATE_LIMITED
            self.parking().park(reason=reason, redrive=redrive, wait=exc.retry_after, error=exc, **audit)
            return
        bad_batch = not transient or (retries >= SPLIT_AFTER_RETRIES and not isinstance(exc, RateLimited))
        if split is not None and len(record_ids) > 1 and bad_batch:
            countdown = self.backoff() if transient else 0.0
            for part in halves(list(record_ids)):
                split(part, countdown)
            log.info("%s: split a failing batch of %d %s (%s)", self.name, len(record_ids), record_type, exc)
            return
        if transient and retries < BROKER_RETRIES:
            if isinstance(exc, RateLimited):
                countdown = backoff_delay(0, base=exc.retry_after, cap=max_broker_countdown(), extra=0.5)
            else:
                countdown = self.backoff()
            self.audit_all(stages.RETRYING, detail={
                "reason": str(exc), "attempt": retries + 1, "countdown": round(countdown, 2)}, **audit)
            raise self.retry(exc=exc, countdown=countdown, max_retries=None)
        if transient and redrive is not None and connection_id is not None:
            reason = RATE_LIMITED if isinstance(exc, RateLimited) else OUTAGE
            self.parking().park(reason=reason, redrive=redrive, wait=park_backoff(redrive.attempts), error=exc,
                                **audit)
            return
        detail = {"reason": str(exc), "error": type(exc).__name__, "attempts": retries + 1}
        if getattr(exc, "code", None) is not None:
            detail.update(error_code=exc.code, details=getattr(exc, "details", {}))
        self.audit_all(stages.FAILED, detail=detail, **audit)
        if not record_ids:  # no record's audit line says it (a poll, a backfill step): this line does
            log.warning("%s: %s failed (%s): %s", self.name, record_type, type(exc).__name__, exc)
        raise reported(exc)


