"""Heartbeats: when each process role (worker, beat, receiver) last showed it was alive.

One Redis key per role holding the time of its latest beat, so every host reads the same answer; status
shows them and the alerts (connector/alerts.py) open an incident when the worker or beat falls silent. A
process beats often (every signal, tick or request) but writes at most once per ``min_interval``: the
cost is one Redis SET per role and process every few seconds, whatever the load.
"""

from __future__ import annotations

import threading
from typing import Any

from connector.clock import SYSTEM_CLOCK, Clock

WORKER = "worker"
BEAT = "beat"
RECEIVER = "receiver"
ROLES = (WORKER, BEAT, RECEIVER)
# The roles whose silence is an incident. Not the receiver: it is idle whenever no webhook arrives, and where
# probed (connector/receiver_probe.py) its /healthz answers a worker every minute at the public URL, which tells
# more than its heartbeat (the route Xero takes: DNS, TLS, proxy); the alerts watch that probe instead.
WATCHED_ROLES = (WORKER, BEAT)
# A key outlives any silence worth reporting, then goes: a role no longer deployed stops being shown.
KEY_TTL_SECONDS = 7 * 86400
DEFAULT_MIN_INTERVAL = 15.0


class Heartbeats:
    def __init__(self, redis: Any, *, clock: Clock = SYSTEM_CLOCK, min_interval: float = DEFAULT_MIN_INTERVAL,
                 key_prefix: str = "connector:heartbeat") -> None:
        self._redis = redis
        self._clock = clock
        self._min_interval = min_interval
        self._prefix = key_prefix
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, role: str) -> str:
        return f"{self._prefix}:{role}"

    def beat(self, role: str) -> bool:
        """Record that ``role`` is alive now; True when this call wrote (at most once per min_interval)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        now = self._clock.time()
        with self._lock:
            if now - self._written.get(role, float("-inf")) < self._min_interval:
                return False
            self._written[role] = now
        self._redis.set(self.key(role), repr(now), ex=KEY_TTL_SECONDS)
        return True

    def last_seen(self) -> dict[str, float | None]:
        """Per role, the epoch seconds of its latest beat (None: never seen, or not for a week)."""
        values = self._redis.mget([self.key(role) for role in ROLES])
        return {role: (float(value.decode() if isinstance(value, bytes) else value) if value is not None else None)
                for role, value in zip(ROLES, values)}

    def status(self) -> dict[str, dict]:
        """What status shows: per role, when it last beat and how many seconds ago."""
        now = self._clock.time()
        return {role: {"last_seen_seconds_ago": None if seen is None else round(max(now - seen, 0.0), 1),
                       "last_seen_epoch": seen}
                for role, seen in self.last_seen().items()}
