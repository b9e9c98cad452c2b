"""Hand events to the broker. The receiver answers 200 only after this returned."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import kombu.exceptions
import kombu.transport.redis
import redis.exceptions

# (task_name, args, queue)
Enqueue = Callable[[str, list, str], None]

# Bounded retries keep the answer well inside Xero's 5 s response window
# (https://developer.xero.com/documentation/webhooks/configuring-your-server).
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


class PublishingRedisChannel(kombu.transport.redis.Channel):
    """kombu's Redis channel, keeping one Redis client for its puts.

    kombu builds a new ``redis.Redis`` for every message it puts (``Channel.conn_or_acquire``), about
    70 us of CPU in each webhook's answer. A client is only a thread-safe view
    on the channel's connection pool, so one serves every put; a new one is made when kombu replaces
    the pool (after a lost connection).
    """

    _put_client: redis.Redis | None = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator[redis.Redis]:
        if client:
            yield client
            return
        reused = self._put_client
        if reused is None or reused.connection_pool is not self.pool:
            reused = self._put_client = self._create_client()
        yield reused


class PublishingRedisTransport(kombu.transport.redis.Transport):
    Channel = PublishingRedisChannel


def uses_redis_broker(celery_app: Any) -> bool:
    broker_url = celery_app.conf.broker_url
    return isinstance(broker_url, str) and urlsplit(broker_url).scheme in ("redis", "rediss")


def reuse_redis_clients(celery_app: Any) -> None:
    """For a process that only publishes (the receiver), on a Redis broker: PublishingRedisChannel.

    Any other broker (AMQP, the embedded in-memory one) keeps its own transport.
    """
    if uses_redis_broker(celery_app):
        celery_app.conf.broker_transport = f"{__name__}:{PublishingRedisTransport.__name__}"


def args_summary(args: list) -> str:
    """What a worker's "task received" line shows of ``args``: bodies, lists and dicts by their size only.

    Celery would otherwise build a truncated repr of the webhook's body or events on each publish, the
    costliest part of publishing a large body; the receiver's accepted line names each record instead.
    """
    return repr([f"<{type(arg).__name__} of {len(arg)}>" if isinstance(arg, (str, list, dict)) else arg
                 for arg in args])


def celery_enqueuer(celery_app: Any) -> Enqueue:
    """An ``Enqueue`` that publishes by task name through ``celery_app`` (no task import needed)."""

    # Celery publishes a task through the default exchange, routed by its queue's name. On Redis that is
    # an LPUSH to the list of that name: declaring the queue first only records a binding no publish
    # reads, and cost every publish a copy of the queue. Other brokers may need the queue declared.
    declare = {"declare": []} if uses_redis_broker(celery_app) else {}

    def enqueue(task_name: str, args: list, queue: str) -> None:
        try:
            celery_app.send_task(task_name, args=args, queue=queue, retry=True, retry_policy=RETRY_POLICY,
                                 argsrepr=args_summary(args), **declare)
        except _BROKER_ERRORS as exc:
            # Only the error type: broker messages can echo URLs that carry passwords.
            raise EnqueueFailed(f"could not queue {task_name} on {queue!r}: {type(exc).__name__}") from exc

    return enqueue
