"""A real Celery worker on a thread of this process, for the embedded default.

Not ``task_always_eager``: messages go through the broker (kombu's in-process ``memory://``
transport when no Redis is configured) and the chain across the xero → zoho queues runs as it
would on separate hosts, with acks, retries and countdowns.
"""

from __future__ import annotations

import threading
import time

from connector import queues
from workers.app import app


class EmbeddedWorker:
    def __init__(self, *, concurrency: int = 4, queue_names: tuple[str, ...] | None = None) -> None:
        self.queue_names = queue_names or (queues.XERO_QUEUE, queues.ZOHO_QUEUE, queues.MAINTENANCE_QUEUE)
        self.controller = app.WorkController(
            app=app,
            hostname=f"embedded@{threading.get_ident()}",
            concurrency=concurrency,
            pool_cls="threads",
            loglevel="WARNING",
            queues=list(self.queue_names),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=self._on_ready,
        )
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self.controller.start, name="embedded-celery-worker", daemon=True)

    def _on_ready(self, consumer) -> None:
        self._ready.set()

    def start(self, timeout: float = 20.0) -> "EmbeddedWorker":
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        return self

    def stop(self) -> None:
        self.controller.stop(in_sighandler=False)
        self.thread.join(timeout=10)

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
