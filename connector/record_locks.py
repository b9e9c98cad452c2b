"""Per-record write locks in Redis: one writer at a time for each Zoho target record.

The flush, the poll and the pushes that follow payments can all push the same record at once. Two
concurrent writes of one invoice would each compute their line changes from the same read (lines
appended twice), and the older snapshot could land last. So a push takes the lock of every record
it writes, reads the newest snapshot under it, writes, saves the link, and lets go.

- ``take`` grabs whichever of the wanted locks are free, in one Lua call, and never waits while it
  holds any: a batch writes what it got, releases, then waits for the rest. No deadlock is possible.
- A lock is a lease (``ttl``): a worker killed while holding one delays that record by at most the
  lease, never for good. The version check on the id link (store/links.py) still refuses an older
  version if a lease ran out under a very slow write.
- Release is token-checked: a writer whose lease expired cannot free its successor's lock.

``Lease`` is the same mechanism for one key held through a long job (one poll per connection): the
holder renews it as it goes, and learns it lost it (``LeaseLost``) instead of running on beside the next.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator

from connector.errors import TransientError

log = logging.getLogger(__name__)

_TAKE_FREE = """
local taken = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then taken[#taken + 1] = i end
end
return taken
"""
_RELEASE = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); released = released + 1 end
end
return released
"""
_RENEW = """
local renewed = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]); renewed = renewed + 1 end
end
return renewed
"""


class LeaseLost(Exception):
    """The lease ran out and someone else may hold it now: stop, and leave the work to them."""


class Lease:
    """One holder at a time of ``key``, for ``ttl`` seconds after each take or renew.

    A holder that dies frees the key within ``ttl``; one that lives on past its ``ttl`` finds out at its
    next ``renew`` and cannot free the key of whoever took it meanwhile.
    """

    def __init__(self, redis, key: str, *, ttl: float) -> None:
        self.key = key
        self._ttl_ms = int(ttl * 1000)
        self._token = secrets.token_hex(8)
        self._take_script = redis.register_script(_TAKE_FREE)
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)

    def take(self) -> bool:
        """Take the key if it is free; False when someone holds it."""
        return bool(self._take_script(keys=[self.key], args=[self._token, self._ttl_ms]))

    def renew(self) -> None:
        """Hold on for another ``ttl``; raises LeaseLost when the key is no longer ours."""
        if not self._renew_script(keys=[self.key], args=[self._token, self._ttl_ms]):
            raise LeaseLost(f"the lease on {self.key} ran out")

    def release(self) -> None:
        """Let go, if the key is still ours."""
        self._release_script(keys=[self.key], args=[self._token])


class RecordLocks:
    def __init__(self, redis, *, ttl: float = 120.0, wait: float = 60.0, poll: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl * 1000)
        self._wait = wait
        self._poll = poll
        self._sleep = sleep
        self._monotonic = monotonic
        self._take_script = redis.register_script(_TAKE_FREE)
        self._release_script = redis.register_script(_RELEASE)

    @staticmethod
    def key(connection_id: int, kind: str, xero_id: str) -> str:
        return f"mlc:write-lock:{connection_id}:{kind}:{xero_id}"

    def rounds(self, connection_id: int, kind: str, xero_ids: Iterable[str]) -> Iterator[list[str]]:
        """Yields the records in rounds, each round's locks held until the caller asks for the next.

        Use it in a ``with contextlib.closing(...)`` so the last round's locks go even on an error.
        Raises TransientError when some records stay locked by another writer for ``wait`` seconds
        (the task retries later; the records written so far are skipped then by their hash).
        """
        remaining = list(dict.fromkeys(xero_ids))
        deadline = self._monotonic() + self._wait
        waiting = False
        while remaining:
            token = secrets.token_hex(8)
            keys = [self.key(connection_id, kind, x) for x in remaining]
            taken_at = self._take_script(keys=keys, args=[token, self._ttl_ms])
            taken = [remaining[int(i) - 1] for i in taken_at]
            if not taken:
                if self._monotonic() >= deadline:
                    raise TransientError(f"{len(remaining)} {kind} record(s) are being written by another worker")
                if not waiting:
                    log.info("zoho.records_busy: waiting for %d %s record(s) another worker is writing",
                             len(remaining), kind)
                    waiting = True
                self._sleep(self._poll)
                continue
            waiting = False
            try:
                yield taken
            finally:
                self._release_script(keys=[self.key(connection_id, kind, x) for x in taken], args=[token])
            remaining = [x for x in remaining if x not in set(taken)]
            deadline = self._monotonic() + self._wait  # the wait counts from the last progress
