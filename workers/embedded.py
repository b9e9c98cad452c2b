"""A real Celery worker on a thread of this process, for the embedded default.

Not ``task_always_eager``: messages go through the broker (kombu's in-process ``memory://``
transport when no Redis is configured) and the chain across the xero → zoho queues runs as it
would on separate hosts, with acks, retries and countdowns.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from celery.signals import before_task_publish, task_postrun
from celery.utils.timer2 import Timer

from connector import queues
from workers.app import app

# How often, at most, a stopped worker's loop takes to notice it was stopped.
STOP_CHECK_SECONDS = 0.1


class PromptlyStoppedTimer(Timer):
    """Celery's timer thread (countdowns, ETAs), woken when it is stopped.

    With nothing scheduled it waits up to 1 s at a time for an entry, and looks at its shutdown flag only
    when that wait ends, so stopping it took up to 1 s."""

    def stop(self) -> None:
        self._Timer__is_shutdown.set()
        with self.not_empty:
            self.not_empty.notify_all()
        super().stop()


class EmbeddedWorker:
    def __init__(self, *, concurrency: int = 4, queue_names: tuple[str, ...] | None = None) -> None:
        self.queue_names = queue_names or (queues.XERO_QUEUE, queues.ZOHO_QUEUE, queues.MAINTENANCE_QUEUE)
        self.controller = app.WorkController(
            app=app,
            hostname=f"embedded@{threading.get_ident()}",
            concurrency=concurrency,
            pool_cls="threads",
            timer_cls=PromptlyStoppedTimer,
            loglevel="WARNING",
            queues=list(self.queue_names),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=self._on_ready,
        )
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self.controller.start, name="embedded-celery-worker", daemon=True)
        # Task messages published in this process and not yet run, by task id: a retry is published under
        # its task's id before the try that asked for it finishes, so each id is counted, not just noted.
        self._outstanding: Counter[str] = Counter()
        self._outstanding_lock = threading.Lock()

    def _on_ready(self, consumer) -> None:
        # Celery's loop for a transport without an event loop (synloop: kombu's in-process one) looks whether
        # the worker was stopped only between waits for a message of up to 2 s each, so stop() took up to 2 s
        # (`connector run`'s Ctrl-C, the end of `connector demo`). Shorter waits let it look every
        # STOP_CHECK_SECONDS; a message still arrives as soon as it is queued.
        connection = consumer.connection
        drain_events = connection.drain_events

        def drain_events_briefly(timeout=None, **kwargs):
            return drain_events(timeout=timeout if timeout is None else min(timeout, STOP_CHECK_SECONDS), **kwargs)

        connection.drain_events = drain_events_briefly
        self._ready.set()

    def _on_publish(self, headers=None, **_) -> None:
        with self._outstanding_lock:
            self._outstanding[headers["id"]] += 1

    def _on_run(self, task_id=None, **_) -> None:
        with self._outstanding_lock:
            if self._outstanding[task_id] > 1:
                self._outstanding[task_id] -= 1
            else:
                self._outstanding.pop(task_id, None)

    def idle(self) -> bool:
        """All the work handed to it is done: every message published since it started has run (with its
        retries and countdowns, and whatever it published in turn), none is reserved or running, its
        queues hold nothing published before, and no buffer holds ids."""
        from celery.worker import state

        with self._outstanding_lock:
            if self._outstanding:
                return False
        if state.active_requests or state.reserved_requests:
            return False
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            if any(channel.queue_declare(queue=name, passive=True).message_count for name in self.queue_names):
                return False
        # Ids waiting in a buffer are work too, though no message may stand for them yet.
        from workers.deps import get_deps

        deps = get_deps()
        return not (deps.coalescer.holds_any() or deps.zoho_buffer.holds_any())

    def start(self, timeout: float = 20.0) -> "EmbeddedWorker":
        before_task_publish.connect(self._on_publish, weak=False)
        task_postrun.connect(self._on_run, weak=False)
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        return self

    def stop(self) -> None:
        self.controller.stop(in_sighandler=False)
        self.thread.join(timeout=10)
        before_task_publish.disconnect(self._on_publish)
        task_postrun.disconnect(self._on_run)

    def __enter__(self) -> "EmbeddedWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(predicate, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_until_quiet(measure, *, quiet_for: float, timeout: float, interval: float = 0.1) -> bool:
    """Wait until ``measure()`` has not changed for ``quiet_for`` seconds (True), or ``timeout``."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval)
        current = measure()
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return True
    return False
