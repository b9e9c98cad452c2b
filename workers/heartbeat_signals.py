"""The worker's heartbeat (connector/heartbeats.py), from Celery's signals: the event heartbeat the
worker's main process sends every few seconds while it is alive (``heartbeat_sent``), and each task run
(``task_postrun``, for workers started without event heartbeats). Heartbeats writes at most one Redis
SET per interval.

Beat evaluates the alerts; if beat itself falls silent, nothing would report it, so the worker checks
beat's heartbeat once a minute and, when it is older than CONNECTOR_ALERT_SILENCE, runs the evaluation
itself (the incident book's lock keeps a single sender)."""

from __future__ import annotations

import logging
import threading

from celery import signals

from connector.heartbeats import BEAT, WORKER

log = logging.getLogger(__name__)

BEAT_CHECK_INTERVAL_SECONDS = 60.0
_state: dict = {"beat_checked_at": None, "alerts_thread": None}
_state_lock = threading.Lock()


def worker_alive(*, in_background: bool = False) -> None:
    """The worker's heartbeat, and beat's check. ``in_background`` (the signals): an evaluation it starts runs
    on a thread, as beat's does, so a channel that is slow to answer holds up no heartbeat and no task."""
    from workers.deps import get_deps

    try:
        deps = get_deps()
        deps.heartbeats.beat(WORKER)
        now = deps.clock.monotonic()
        with _state_lock:
            due = _state["beat_checked_at"] is None or now - _state["beat_checked_at"] >= BEAT_CHECK_INTERVAL_SECONDS
            if due:
                _state["beat_checked_at"] = now
        if due:
            seen = deps.heartbeats.last_seen()[BEAT]
            if seen is not None and deps.clock.time() - seen > deps.settings.alert_silence:
                _evaluate(deps.check_alerts, in_background)
    except Exception as exc:  # never breaks the worker's loop or a task; the next beat tries again
        log.warning("worker.heartbeat_failed", extra={"error": type(exc).__name__, "retry": "next heartbeat"})


def _evaluate(check_alerts, in_background: bool) -> None:
    if not in_background:
        check_alerts()
        return
    with _state_lock:
        running = _state["alerts_thread"]
        if running is not None and running.is_alive():  # the last one is still sending: it covers this minute
            return
        _state["alerts_thread"] = threading.Thread(target=check_alerts, name="alerts", daemon=True)
        _state["alerts_thread"].start()


@signals.heartbeat_sent.connect
def _on_heartbeat_sent(**_) -> None:
    worker_alive(in_background=True)


@signals.task_postrun.connect
def _on_task_postrun(**_) -> None:
    worker_alive(in_background=True)
