"""The shared Xero rate governor: one Redis round trip per decision, never a sleep.

Xero's limits (https://developer.xero.com/documentation/oauth2/limits): per tenant 60 calls a
minute, 5,000 a day (1,000 on the Starter tier), 5 in flight; per app 10,000 a minute across tenants. Xero's
windows are fixed but their reset times are not published, so the governor enforces *rolling* bounds instead: no 60 s
window ever holds more than the minute limit and no 24 h window more than the day limit. That is
stricter than Xero and therefore always safe.

State lives in Redis so every worker process and host shares it. Each window is a sorted set of
grant timestamps (integer milliseconds, so scores stay exact through Lua's number formatting);
in-flight permits are a sorted set scored by expiry, so a crashed worker's slot frees itself.
Scripts take the time from the injected clock (never Redis TIME) so ManualClock drives them.
All keys of one app share a hash tag, so the scripts also run on Redis Cluster.
"""

from __future__ import annotations

import math
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import RateLimited

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Keys outlive their window by this much, then Redis drops them on its own.
KEY_GRACE_MS = 60_000
# Smallest retry_after ever returned: a denial always means "come back later", never "now".
MIN_RETRY_AFTER = 0.001
# A full in-flight set frees up when some call finishes, which is usually well under a second;
# the permit expiry is only the worst case (crashed worker), so suggest the sooner of the two.
CONCURRENT_RETRY_AFTER = 0.5

# Share of each budget that lower priorities must leave untouched, so webhook work (priority 0)
# always finds room. Priority: 0 webhook work, 1 replay, 2 backfill.
PRIORITY_MINUTE_HEADROOM = {0: 0.0, 1: 0.10, 2: 0.25}
PRIORITY_DAY_HEADROOM = {0: 0.0, 1: 0.05, 2: 0.10}

HEADER_MINUTE_REMAINING = "x-minlimit-remaining"
HEADER_DAY_REMAINING = "x-daylimit-remaining"
HEADER_APP_MINUTE_REMAINING = "x-appminlimit-remaining"


@dataclass(frozen=True)
class Limits:
    minute: int = 60
    day: int = 5000  # 1000 on Xero's Starter tier: take it from the connection's settings
    concurrent: int = 5
    app_minute: int = 10000


@dataclass(frozen=True)
class Permit:
    tenant_id: str
    token: str
    granted_at: float
    # The limits it was granted under, so release() can compare Xero's headers with them.
    limits: Limits = field(default=Limits(), compare=False)


@dataclass(frozen=True)
class Denial:
    reason: str  # "minute" | "day" | "concurrent" | "app_minute" | "penalty"
    retry_after: float  # seconds, > 0: when the blocking limit frees up


# KEYS: tenant minute, tenant day, tenant in-flight, tenant penalty, app minute, app penalty,
#       tenant day of dry runs
# ARGV: now_ms, token, minute_allowed, day_allowed, concurrent, app_allowed,
#       inflight_ttl_ms, concurrent_retry_ms, key_grace_ms, dry_run ("1": a dry run's call)
# Returns {1} when granted, else {0, reason, wait_ms} for the constraint that frees up last.
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
local token = ARGV[2]
local MINUTE, DAY = 60000, 86400000
local grace = tonumber(ARGV[9])
local function ms(x) return string.format('%d', x) end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now - MINUTE))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms(now - DAY))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ms(now))
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ms(now - MINUTE))

local reason, wait = nil, 0
local function block(name, w)
  if reason == nil or w > wait then reason, wait = name, w end
end

for _, key in ipairs({KEYS[4], KEYS[6]}) do
  local ends = tonumber(redis.call('GET', key) or '0')
  if ends > now then block('penalty', ends - now) end
end

-- The grant that must leave the window before one more fits: with `used` entries and room for
-- `allowed`, that is the (used - allowed)-th oldest, 0-based.
local function window(key, allowed, span, name)
  local used = redis.call('ZCARD', key)
  if used >= allowed then
    local entry = redis.call('ZRANGE', key, used - allowed, used - allowed, 'WITHSCORES')
    block(name, tonumber(entry[2]) + span - now)
  end
end
window(KEYS[1], tonumber(ARGV[3]), MINUTE, 'minute')
window(KEYS[2], tonumber(ARGV[4]), DAY, 'day')
window(KEYS[5], tonumber(ARGV[6]), MINUTE, 'app_minute')

if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  block('concurrent', math.min(tonumber(first[2]) - now, tonumber(ARGV[8])))
end

if reason then return {0, reason, ms(wait)} end

local expires = now + tonumber(ARGV[7])
redis.call('ZADD', KEYS[1], ms(now), token)
redis.call('ZADD', KEYS[2], ms(now), token)
redis.call('ZADD', KEYS[3], ms(expires), token)
redis.call('ZADD', KEYS[5], ms(now), token)
redis.call('PEXPIRE', KEYS[1], MINUTE + grace)
redis.call('PEXPIRE', KEYS[2], DAY + grace)
redis.call('PEXPIRE', KEYS[3], ms(expires - now + grace))
redis.call('PEXPIRE', KEYS[5], MINUTE + grace)
if ARGV[10] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ms(now - DAY))
  redis.call('ZADD', KEYS[7], ms(now), token)
  redis.call('PEXPIRE', KEYS[7], DAY + grace)
end
return {1}
"""

# KEYS: tenant minute, tenant day, tenant in-flight, app minute
# ARGV: now_ms, token, phantom_prefix, then (remaining, limit) for minute, day, app minute
#       (remaining -1 = header absent), key_grace_ms
# Frees the permit's slot; where Xero reports fewer calls left than we count, adds placeholder
# grants at `now` so the window matches Xero and they age out with it. Never removes anything.
_RELEASE_LUA = """
local now = tonumber(ARGV[1])
local MINUTE, DAY = 60000, 86400000
local grace = tonumber(ARGV[10])
local function ms(x) return string.format('%d', x) end

redis.call('ZREM', KEYS[3], ARGV[2])

local function tighten(key, span, remaining, limit)
  if remaining < 0 then return end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ms(now - span))
  local unseen = (limit - redis.call('ZCARD', key)) - remaining
  for i = 1, unseen do redis.call('ZADD', key, ms(now), ARGV[3] .. i) end
  if unseen > 0 then redis.call('PEXPIRE', key, span + grace) end
end
tighten(KEYS[1], MINUTE, tonumber(ARGV[4]), tonumber(ARGV[5]))
tighten(KEYS[2], DAY, tonumber(ARGV[6]), tonumber(ARGV[7]))
tighten(KEYS[4], MINUTE, tonumber(ARGV[8]), tonumber(ARGV[9]))
return 1
"""

# KEYS: penalty key. ARGV: until_ms, ttl_ms. Only ever moves the end of a penalty later.
_PENALISE_LUA = """
local ends = tonumber(ARGV[1])
if ends > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', ARGV[2])
end
return 1
"""


def problem_scope(problem: str | None) -> str | None:
    """Map an X-Rate-Limit-Problem value to "minute" | "day" | "app" | "concurrent" (or None).

    Xero's exact spellings are not all documented (https://developer.xero.com/documentation/oauth2/limits),
    so match prefixes.
    """
    value = (problem or "").strip().lower()
    if value.startswith("app"):
        return "app"
    if value.startswith("min"):
        return "minute"
    if value.startswith("day") or value.startswith("daily"):
        return "day"
    if value.startswith("concurren"):
        return "concurrent"
    return None


def allowed_share(limit: int, headroom: float) -> int:
    """Calls a caller may use of `limit` when it must leave `headroom` free (at least one)."""
    return max(1, math.floor(limit * (1 - headroom) + 1e-9))


def day_share(day_limit: int, priority: int) -> int:
    """Calls of the day a caller of ``priority`` may use; the governor keeps the rest for higher priorities."""
    return allowed_share(day_limit, PRIORITY_DAY_HEADROOM[min(max(priority, 0), 2)])


def day_share_left(day_limit: int, day_used: int, priority: int) -> int:
    """What is left of that share when ``day_used`` calls (of every priority) were made in the last 24 h."""
    return max(day_share(day_limit, priority) - day_used, 0)


def _remaining_from_headers(headers: Mapping[str, str] | None, name: str, limit: int) -> int:
    """Xero's remaining count for one window, or -1 when the header is absent or garbage."""
    if not headers:
        return -1
    for key, value in headers.items():
        if str(key).lower() == name:
            try:
                remaining = int(str(value).strip())
            except ValueError:
                return -1
            return min(remaining, limit) if remaining >= 0 else -1
    return -1


class XeroRateGovernor:
    """Answers at once whether a Xero call may start now, for every worker sharing `redis`."""

    def __init__(
        self,
        redis,
        *,
        clock: Clock | None = None,
        app_id: str = "default",
        key_prefix: str = "ratelimit:xero",
        inflight_ttl: float = 120.0,
    ) -> None:
        self._redis = redis
        self._clock = clock or SYSTEM_CLOCK
        self._base = f"{key_prefix}:{{{app_id}}}"  # one hash tag per app: one cluster slot
        self._inflight_ttl_ms = int(inflight_ttl * 1000)
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._penalise = redis.register_script(_PENALISE_LUA)

    def _key(self, tenant_id: str, name: str) -> str:
        return f"{self._base}:tenant:{tenant_id}:{name}"

    def _app_key(self, name: str) -> str:
        return f"{self._base}:app:{name}"

    def _now_ms(self) -> int:
        return round(self._clock.time() * 1000)

    def try_acquire(self, tenant_id: str, limits: Limits = Limits(), *, priority: int = 0,
                    dry_run: bool = False) -> Permit | Denial:
        """A Permit to call Xero now, or a Denial saying why and when to come back.

        A dry run's call counts like any other (Xero counts it), and is also noted apart so the
        operator can tell it from syncing (``usage``)."""
        level = min(max(priority, 0), 2)
        minute_headroom = PRIORITY_MINUTE_HEADROOM[level]
        now = self._now_ms()
        token = uuid.uuid4().hex
        result = self._acquire(
            keys=[
                self._key(tenant_id, "minute"),
                self._key(tenant_id, "day"),
                self._key(tenant_id, "inflight"),
                self._key(tenant_id, "penalty"),
                self._app_key("minute"),
                self._app_key("penalty"),
                self._key(tenant_id, "day:dry_run"),
            ],
            args=[
                now,
                token,
                allowed_share(limits.minute, minute_headroom),
                day_share(limits.day, level),
                limits.concurrent,
                # The app-wide minute is a minute window too, so the same headroom applies.
                allowed_share(limits.app_minute, minute_headroom),
                self._inflight_ttl_ms,
                int(CONCURRENT_RETRY_AFTER * 1000),
                KEY_GRACE_MS,
                "1" if dry_run else "0",
            ],
        )
        if int(result[0]) == 1:
            return Permit(tenant_id=tenant_id, token=token, granted_at=now / 1000, limits=limits)
        reason = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        return Denial(reason=reason, retry_after=max(int(result[2]) / 1000, MIN_RETRY_AFTER))

    def release(self, permit: Permit, headers: Mapping[str, str] | None = None) -> None:
        """Free the permit's slot; with Xero's response headers, tighten to what Xero counts."""
        limits = permit.limits
        self._release(
            keys=[
                self._key(permit.tenant_id, "minute"),
                self._key(permit.tenant_id, "day"),
                self._key(permit.tenant_id, "inflight"),
                self._app_key("minute"),
            ],
            args=[
                self._now_ms(),
                permit.token,
                f"phantom:{uuid.uuid4().hex}:",
                _remaining_from_headers(headers, HEADER_MINUTE_REMAINING, limits.minute),
                limits.minute,
                _remaining_from_headers(headers, HEADER_DAY_REMAINING, limits.day),
                limits.day,
                _remaining_from_headers(headers, HEADER_APP_MINUTE_REMAINING, limits.app_minute),
                limits.app_minute,
                KEY_GRACE_MS,
            ],
        )

    def observe_429(self, tenant_id: str, *, retry_after: float, problem: str | None) -> None:
        """After a 429, grant nothing for the tenant (or the whole app) until retry_after passes."""
        key = self._app_key("penalty") if problem_scope(problem) == "app" else self._key(tenant_id, "penalty")
        wait_ms = max(int(math.ceil(retry_after * 1000)), 1)
        self._penalise(keys=[key], args=[self._now_ms() + wait_ms, wait_ms + KEY_GRACE_MS])

    def penalty_remaining(self, tenant_id: str) -> float:
        """Seconds until a 429 penalty on this tenant or on the app ends (0.0 when none)."""
        values = self._redis.mget(self._key(tenant_id, "penalty"), self._app_key("penalty"))
        until = max((int(v) for v in values if v is not None), default=0)
        return max(until - self._now_ms(), 0) / 1000

    def usage(self, tenant_id: str) -> dict:
        """Calls counted in the current rolling windows (read-only; placeholders included)."""
        now = self._now_ms()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcount(self._key(tenant_id, "minute"), f"({now - MINUTE_MS}", "+inf")
        pipe.zcount(self._key(tenant_id, "day"), f"({now - DAY_MS}", "+inf")
        pipe.zcount(self._key(tenant_id, "inflight"), f"({now}", "+inf")
        pipe.zcount(self._app_key("minute"), f"({now - MINUTE_MS}", "+inf")
        pipe.zcount(self._key(tenant_id, "day:dry_run"), f"({now - DAY_MS}", "+inf")
        minute_used, day_used, in_flight, app_minute_used, day_used_by_dry_runs = pipe.execute()
        return {
            "minute_used": minute_used,
            "day_used": day_used,
            "day_used_by_dry_runs": day_used_by_dry_runs,
            "in_flight": in_flight,
            "app_minute_used": app_minute_used,
            "penalty_remaining": self.penalty_remaining(tenant_id),
        }

    @contextmanager
    def slot(self, tenant_id: str, limits: Limits = Limits(), *, priority: int = 0) -> Iterator[Permit]:
        """Hold a permit for the block; raise RateLimited at once when denied.

        To feed Xero's headers back, call ``release(permit, response.headers)`` inside the block;
        the release on exit is then a no-op.
        """
        outcome = self.try_acquire(tenant_id, limits, priority=priority)
        if isinstance(outcome, Denial):
            raise RateLimited(
                f"Xero rate governor: {outcome.reason} limit for tenant {tenant_id}",
                retry_after=outcome.retry_after,
                problem=outcome.reason,
            )
        try:
            yield outcome
        finally:
            self.release(outcome)
