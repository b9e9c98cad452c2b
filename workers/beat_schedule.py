"""Beat's scheduler: Celery's own, keeping its state file (when each job last ran) where
``beat_schedule_filename`` says, CONNECTOR_DATA_DIR by default, and making that folder when needed.

Each tick also writes beat's heartbeat and, once a minute, evaluates the alerts here in beat
(connector/alerts.py): beat needs no worker for it, so a dead worker is still reported. The evaluation
reads only what the connector stores (no Xero or Zoho call), on a thread of its own (one at a time), so a
slow database never holds up the schedule, and never raises into the scheduler."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from functools import partial
from pathlib import Path

from celery.beat import PersistentScheduler

from connector.heartbeats import BEAT

log = logging.getLogger(__name__)

ALERT_INTERVAL_SECONDS = 60.0


class DataDirScheduler(PersistentScheduler):
    _alerts_checked_at: float | None = None
    _alerts_thread: threading.Thread | None = None
    _watching_since: datetime | None = None  # beat's first tick: a worker never seen since then is reported

    def _open_schedule(self):
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open_schedule()

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        beat_alive_and_check_alerts(self, in_background=True)
        # Wake at least once a minute, so the heartbeat and the alerts keep their pace whatever the schedule.
        return min(interval, ALERT_INTERVAL_SECONDS) if interval else interval


def beat_alive_and_check_alerts(holder, *, in_background: bool = False) -> None:
    """Beat's heartbeat, and the alert evaluation when a minute has passed since ``holder``'s last one (and
    the previous one has finished)."""
    from workers.deps import get_deps

    try:
        deps = get_deps()
        deps.heartbeats.beat(BEAT)
        if holder._watching_since is None:
            holder._watching_since = deps.clock.now()
        now = deps.clock.monotonic()
        if holder._alerts_checked_at is not None and now - holder._alerts_checked_at < ALERT_INTERVAL_SECONDS:
            return
        if holder._alerts_thread is not None and holder._alerts_thread.is_alive():
            return
        holder._alerts_checked_at = now
        if in_background:
            holder._alerts_thread = threading.Thread(target=partial(deps.check_alerts, holder._watching_since),
                                                     name="alerts", daemon=True)
            holder._alerts_thread.start()
        else:
            deps.check_alerts(holder._watching_since)
    except Exception as exc:  # Redis or the database out of reach: the schedule goes on, next tick retries
        log.warning("beat.heartbeat_failed", extra={"error": type(exc).__name__, "retry": "next tick"})
