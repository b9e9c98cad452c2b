"""Leased Redis buffers: ids wait a short window in Redis, then one flush takes them together.

One implementation serves both directions: webhook ids awaiting one coalesced Xero fetch
(prefix ``xero:coalesce``) and fetched ids awaiting one batched Zoho upsert (``zoho:push``).
Per (connection, resource) there is one buffer shared by every worker process and host:

- ``pending``  sorted set of record ids (score = first arrival, so the oldest are fetched first);
  a duplicate event adds nothing, so one fetch serves every event for a record.
- ``sync``     hash record id → the sync id of the trip that will fetch it (the first one wins;
  later duplicates join that trip).
- ``flag``     "a flush is scheduled", SET NX with a TTL: of many events in a window exactly one
  schedules the flush task, and a lost task cannot block the buffer for longer than the TTL.
- ``leases``   sorted set lease token → expiry. A flush *claims* ids into ``lease:<token>``
  instead of deleting them, acknowledges a chunk only once the next stage has it (its task is
  queued), and gives the rest back on failure. A worker that dies mid-flush leaves its lease to
  expire; the next claim puts those ids back in ``pending``. Nothing is lost, and doing a chunk
  twice is harmless (snapshots keep the newest state; pushes skip unchanged records).

``reschedule`` is also the sweep (beat, every minute): a buffer with ids waiting, or with an
expired lease, and no flush scheduled (the flag expired with a lost task) gets a flush again.

Every step is one Lua script, so concurrent ingests and flushes cannot interleave inside one.
Times come from the injected clock (never Redis TIME) so ManualClock drives leases in tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from connector.clock import SYSTEM_CLOCK, Clock

# Ids one flush claims: a handful of IDs= calls (≤50 ids each), so one task stays short; four
# calls are two Zoho upserts' worth (≤100 records each).
DEFAULT_FLUSH_CHUNKS = 4
IDS_PER_FETCH = 50
# A claimed batch not acknowledged (or extended) in this long is presumed lost with its worker and
# reclaimed. A flush extends its lease after every chunk, and one chunk is at most one IDs= call
# (3 transport attempts of ≤35 s, connector/http.py), so two minutes never cuts off a live flush
# while a killed worker's ids are back within a couple of minutes (plus the minute-ly sweep).
DEFAULT_LEASE_SECONDS = 120.0
# The flag outlives the countdown it guards by this much: a lost flush task frees the buffer soon.
FLAG_GRACE_SECONDS = 30.0

# KEYS: pending, sync, flag. ARGV: now_ms, flag_ttl_ms, then id, sync_id pairs.
# Returns {flush_needed (1 when this call set the flag), effective sync id per given id...}.
_ADD_LUA = """
local now = ARGV[1]
local out = {0}
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i])
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  out[#out + 1] = redis.call('HGET', KEYS[2], ARGV[i])
end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then out[1] = 1 end
return out
"""

# KEYS: pending, sync, leases, this lease. ARGV: now_ms, max_ids, lease_ms, token, lease key prefix.
# Reclaims expired leases into pending, then moves up to max_ids oldest pending ids into this lease.
# Returns {id1, sync1, id2, sync2, ...}.
_CLAIM_LUA = """
local now = tonumber(ARGV[1])
local function ms(x) return string.format('%d', x) end
for _, stale in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ms(now))) do
  local key = ARGV[5] .. stale
  local pairs_ = redis.call('HGETALL', key)
  for i = 1, #pairs_, 2 do
    redis.call('ZADD', KEYS[1], 'NX', 0, pairs_[i])
    redis.call('HSETNX', KEYS[2], pairs_[i], pairs_[i + 1])
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[3], stale)
end
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local out = {}
if #ids == 0 then return out end
for _, id in ipairs(ids) do
  local sync = redis.call('HGET', KEYS[2], id) or ''
  redis.call('HSET', KEYS[4], id, sync)
  out[#out + 1] = id
  out[#out + 1] = sync
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
local expires = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[3], ms(expires), ARGV[4])
return out
"""

# KEYS: pending, sync, leases, this lease. ARGV: token. Gives every id still in the lease back
# (score 0: first in line next time; an id that arrived again meanwhile keeps its newer sync id).
_RELEASE_LUA = """
local pairs_ = redis.call('HGETALL', KEYS[4])
for i = 1, #pairs_, 2 do
  redis.call('ZADD', KEYS[1], 'NX', 0, pairs_[i])
  redis.call('HSETNX', KEYS[2], pairs_[i], pairs_[i + 1])
end
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return #pairs_ / 2
"""

# KEYS: pending, flag, leases. ARGV: flag_ttl_ms, now_ms. Sets the flag when ids wait (pending,
# or in a lease whose worker is gone) and no flush is scheduled.
# KEYS: leases. ARGV: token, expiry_ms. Pushes a live lease's expiry out (a no-op once reclaimed).
_EXTEND_LUA = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
  return 1
end
return 0
"""

_RESCHEDULE_LUA = """
if redis.call('ZCARD', KEYS[1]) == 0 and redis.call('ZCOUNT', KEYS[3], '-inf', ARGV[2]) == 0 then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""


@dataclass(frozen=True)
class Claim:
    """Ids one flush took out of a buffer; acknowledge what was done, release the rest."""

    connection_id: int
    resource: str
    token: str
    ids: list[str]
    sync_ids: dict[str, str] = field(default_factory=dict)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


XERO_FETCH_BUFFER = "xero:coalesce"  # webhook ids awaiting a coalesced IDs= fetch
ZOHO_PUSH_BUFFER = "zoho:push"  # fetched ids awaiting a batched Zoho upsert


class LeasedBuffer:
    def __init__(self, redis, *, clock: Clock | None = None, key_prefix: str = XERO_FETCH_BUFFER,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self._redis = redis
        self._clock = clock or SYSTEM_CLOCK
        self._prefix = key_prefix
        self._lease_ms = int(lease_seconds * 1000)
        self._add = redis.register_script(_ADD_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._extend = redis.register_script(_EXTEND_LUA)
        self._reschedule = redis.register_script(_RESCHEDULE_LUA)

    def _key(self, connection_id: int, resource: str, name: str) -> str:
        # One hash tag per buffer, so every script's keys share a cluster slot.
        return f"{self._prefix}:{{{connection_id}:{resource}}}:{name}"

    def _now_ms(self) -> int:
        return round(self._clock.time() * 1000)

    @staticmethod
    def _flag_ttl_ms(countdown: float) -> int:
        return int((countdown + FLAG_GRACE_SECONDS) * 1000)

    def add(self, connection_id: int, resource: str, sync_ids: dict[str, str], *,
            countdown: float) -> tuple[bool, dict[str, str]]:
        """Buffer ids (id → proposed sync id). Returns (flush_needed, id → sync id in effect).

        ``flush_needed`` is True for exactly one caller until that flush starts: it must schedule
        the flush task with ``countdown``. A duplicate id keeps the sync id of the trip it joined.
        """
        if not sync_ids:
            return False, {}
        ids = list(sync_ids)
        args: list = [self._now_ms(), self._flag_ttl_ms(countdown)]
        for record_id in ids:
            args += [record_id, sync_ids[record_id]]
        result = self._add(keys=[self._key(connection_id, resource, "pending"),
                                 self._key(connection_id, resource, "sync"),
                                 self._key(connection_id, resource, "flag")], args=args)
        return int(result[0]) == 1, {record_id: _text(s) for record_id, s in zip(ids, result[1:])}

    def holds_any(self) -> bool:
        """Whether any connection's buffer of this kind still holds ids, waiting or leased (work not yet
        done that no queued task may stand for until the next flush or sweep)."""
        for key in self._redis.scan_iter(match=f"{self._prefix}:*"):
            name = key if isinstance(key, str) else key.decode()
            if name.endswith((":pending", ":leases")) and self._redis.zcard(name):
                return True
        return False

    def start_flush(self, connection_id: int, resource: str) -> None:
        """Clear the flag as a flush begins: ids arriving from now on schedule the next flush."""
        self._redis.delete(self._key(connection_id, resource, "flag"))

    def cancel_flush(self, connection_id: int, resource: str) -> None:
        """The flush this caller was to schedule could not be queued: let the next add (or the sweep) do it."""
        self._redis.delete(self._key(connection_id, resource, "flag"))

    def claim(self, connection_id: int, resource: str, *,
              max_ids: int = DEFAULT_FLUSH_CHUNKS * IDS_PER_FETCH) -> Claim | None:
        """Take up to ``max_ids`` of the oldest pending ids under a lease (None when empty)."""
        token = uuid.uuid4().hex
        lease_prefix = self._key(connection_id, resource, "lease:")
        result = self._claim(
            keys=[self._key(connection_id, resource, "pending"), self._key(connection_id, resource, "sync"),
                  self._key(connection_id, resource, "leases"), lease_prefix + token],
            args=[self._now_ms(), max_ids, self._lease_ms, token, lease_prefix],
        )
        if not result:
            return None
        pairs = [_text(v) for v in result]
        ids = pairs[0::2]
        sync_ids = {i: s for i, s in zip(ids, pairs[1::2]) if s}
        return Claim(connection_id, resource, token, ids, sync_ids)

    def extend(self, claim: Claim) -> bool:
        """Keep a claim alive for another lease period (a flush does this after every chunk)."""
        expires = self._now_ms() + self._lease_ms
        return int(self._extend(keys=[self._key(claim.connection_id, claim.resource, "leases")],
                                args=[claim.token, expires])) == 1

    def acknowledge(self, claim: Claim, ids: list[str] | None = None) -> None:
        """These ids (default: all of the claim) are in the next stage's hands: drop them from the lease."""
        lease = self._key(claim.connection_id, claim.resource, "lease:") + claim.token
        if ids is None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(lease)
            pipe.zrem(self._key(claim.connection_id, claim.resource, "leases"), claim.token)
            pipe.execute()
        elif ids:
            self._redis.hdel(lease, *ids)

    def release(self, claim: Claim) -> int:
        """Give every id not acknowledged back to the buffer; returns how many went back."""
        c, r = claim.connection_id, claim.resource
        return int(self._release(
            keys=[self._key(c, r, "pending"), self._key(c, r, "sync"), self._key(c, r, "leases"),
                  self._key(c, r, "lease:") + claim.token],
            args=[claim.token],
        ))

    def reschedule(self, connection_id: int, resource: str, *, countdown: float) -> bool:
        """True when ids wait and no flush is scheduled: the caller schedules one with ``countdown``."""
        return int(self._reschedule(
            keys=[self._key(connection_id, resource, "pending"), self._key(connection_id, resource, "flag"),
                  self._key(connection_id, resource, "leases")],
            args=[self._flag_ttl_ms(countdown), self._now_ms()],
        )) == 1

    def pending(self, connection_id: int, resource: str) -> int:
        return int(self._redis.zcard(self._key(connection_id, resource, "pending")))

    def leased(self, connection_id: int, resource: str) -> int:
        return int(self._redis.zcard(self._key(connection_id, resource, "leases")))
