"""Celery's side of the logging setup: every worker, beat and Flower process logs through
connector/logs.py, and each task's lines carry the sync it works on.

- ``setup_logging``: Celery leaves logging to us once a receiver is connected.
- ``task_prerun``/``task_postrun``: bind, then clear, ``task_id``, ``task`` and what the task's own
  arguments say about the sync (connection, record type, Xero id, sync id), so every line logged
  while the task runs carries them. The sync ids travel in the task arguments from the receiver on
  (receiver → ingest → flush → fetch → push → flush); buffer flushes bind theirs once they claimed ids.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys

from celery import signals

from connector import logs
from connector.pipeline.common import RECORD_TYPES, XERO_CATEGORIES
from connector.xero.webhook_body import delivered_events

log = logging.getLogger(__name__)


def service_name(argv: list[str] | None = None) -> str:
    """Which Celery process this is, from its command line: worker, beat or flower."""
    words = set(argv if argv is not None else sys.argv)
    for name in ("beat", "flower", "worker"):
        if name in words:
            return name
    return "celery"


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **_) -> None:
    # LOG_LEVEL, when set, wins over the command line's --loglevel (one knob for every process).
    from connector.errors import ConfigError
    from connector.settings import log_settings

    level = log_settings()[0] or loglevel or "INFO"
    try:
        logs.setup(service_name(), level=level)
    except ConfigError as exc:
        from workers.startup import refuse

        refuse(str(exc))


def sync_fields(task, args: tuple | list, kwargs: dict) -> dict:
    """The sync a task works on, read from its arguments by name: a single record gives its
    xero_id, a single trip its sync_id; batches of many records leave those to their per-record lines."""
    try:
        bound = _signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments
    except (TypeError, ValueError):
        return {}
    fields: dict = {"connection_id": bound.get("connection_id")}
    resource = bound.get("resource")
    if isinstance(resource, str):
        fields["record_type"] = RECORD_TYPES.get(resource, resource)
    ids = bound.get("ids", bound.get("xero_ids"))
    sync_ids = bound.get("sync_ids")
    if isinstance(ids, (list, tuple)):
        fields.update(logs.one_trip(ids, sync_ids if isinstance(sync_ids, dict) else None))
    notification = bound.get("notification")
    if isinstance(notification, dict):
        zoho_ids = notification.get("ids") or []
        fields.update(record_type=notification.get("module"), sync_id=notification.get("sync_id"),
                      zoho_id=str(zoho_ids[0]) if len(zoho_ids) == 1 else None)
    events = bound.get("events")
    if isinstance(events, str) and isinstance(sync_ids, list) and len(sync_ids) == 1:
        try:
            events = delivered_events(events, sync_ids)  # a webhook body of one event
        except ValueError:
            return fields
    if isinstance(events, list) and len(events) == 1 and isinstance(events[0], dict):
        event = events[0]
        fields.update(xero_id=event.get("resourceId"), sync_id=event.get("sync_id"),
                      record_type=RECORD_TYPES.get(XERO_CATEGORIES.get(str(event.get("eventCategory")).upper(), "")))
    return fields


def _signature(run) -> inspect.Signature:
    try:
        hash(run)
    except TypeError:  # a callable that cannot be a cache key
        return inspect.signature(run)
    return _task_signature(run)


@functools.lru_cache(maxsize=256)
def _task_signature(run) -> inspect.Signature:
    # inspect.signature costs about 20 us, on every task a worker runs; a task's signature never changes.
    return inspect.signature(run)


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    logs.clear()  # nothing of the previous task on this thread leaks into this one
    logs.bind(task_id=task_id, task=getattr(task, "name", None), **sync_fields(task, args, kwargs))


@signals.task_postrun.connect
def _clear_task_context(**_) -> None:
    logs.clear()

