"""Hand events to the broker. The receiver answers 200 only after this returned."""

from __future__ import annotations

from typing import Any, Callable

import kombu.exceptions
import redis.exceptions

# (task_name, args, queue)
Enqueue = Callable[[str, list, str], None]

# Bounded retries keep the answer well inside Xero's 5 s response window (xero-api.md §4.4).
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

_BROKER_ERRORS = (kombu.exceptions.KombuError, redis.exceptions.RedisError, OSError)


class EnqueueFailed(Exception):
    """The task was not durably queued; the caller must answer non-2xx so the sender retries."""


def stop_task_sent_events(celery_app: Any) -> None:
    """For a process that only publishes (the receiver): no "task-sent" event per published task.

    Each would be one more Redis round trip (a PUBLISH) inside every webhook's answer. Flower still
    sees every task through the workers' own events (received, started, succeeded) and the queues'
    lengths through the broker.
    """
    celery_app.conf.task_send_sent_event = False


def args_summary(args: list) -> str:
    """What a worker's "task received" line shows of ``args``: bodies, lists and dicts by their size only.

    Celery would otherwise build a truncated repr of the webhook's body or events on each publish, the
    costliest part of publishing a large body; the receiver's accepted line names each record instead.
    """
    return repr([f"<{type(arg).__name__} of {len(arg)}>" if isinstance(arg, (str, list, dict)) else arg
                 for arg in args])


def celery_enqueuer(celery_app: Any) -> Enqueue:
    """An ``Enqueue`` that publishes by task name through ``celery_app`` (no task import needed)."""

    def enqueue(task_name: str, args: list, queue: str) -> None:
        try:
            celery_app.send_task(task_name, args=args, queue=queue, retry=True, retry_policy=RETRY_POLICY,
                                 argsrepr=args_summary(args))
        except _BROKER_ERRORS as exc:
            # Only the error type: broker messages can echo URLs that carry passwords.
            raise EnqueueFailed(f"could not queue {task_name} on {queue!r}: {type(exc).__name__}") from exc

    return enqueue
