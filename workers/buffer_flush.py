"""Queueing the flush of a leased buffer (connector/coalesce.py): the Xero fetch buffer's
(workers/xero_tasks.py) and the Zoho push buffer's (workers/zoho_tasks.py). Its own module, so the
two task modules share it without importing each other."""

from __future__ import annotations

from connector import queues

XERO_FLUSH = "connector.flush_xero_buffer"


def queue_flush(buffer, flush, connection_id: int, resource: str, *, countdown: float) -> None:
    """Queue the flush whose flag this caller set; if the broker refuses, clear the flag again, so the
    task's retry (or the next add, or the sweep) schedules it: ids are never left behind a stale flag."""
    try:
        flush.apply_async(args=[connection_id, resource], countdown=countdown, queue=flush_queue(flush))
    except Exception:
        buffer.cancel_flush(connection_id, resource)
        raise


def flush_queue(flush) -> str:
    return queues.XERO_QUEUE if flush.name == XERO_FLUSH else queues.ZOHO_QUEUE
