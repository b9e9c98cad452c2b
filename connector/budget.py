"""The Xero day budget per organisation: what was spent (ledger) and what scheduled work may spend (planner).

Xero allows each app 5,000 calls a day per organisation, 1,000 on the Starter tier; its day window is
fixed and resets at a time of its own per organisation, and every response reports
``X-DayLimit-Remaining`` (https://developer.xero.com/documentation/guides/oauth2/limits/). The ledger
learns the limit from that header: between two resets, remaining + calls made since the reset is the
limit. Until a reset has been seen the calls are counted from the first response only, so the estimate
can be low, never high; a 429 with ``X-Rate-Limit-Problem: day`` says the limit is what was spent.

Everything lives in Redis (every worker shares it): hourly buckets of calls by purpose and egress bytes,
the learned limit, and the planner's reservations. ``connector/ratelimit.py`` keeps the minute and
concurrency limits; this module is the one place that decides how much of the day scheduled work
(catch-up polls, payment polls, backfill, consistency checks) may take. Live work (webhook fetches,
write-backs) is never asked: it is only counted, and the planner leaves it the rest of the day.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import redis as redis_lib

from connector.call_purpose import SCHEDULED_PURPOSES, WRITE_BACK
from connector.clock import SYSTEM_CLOCK, Clock
from connector.ratelimit import problem_scope

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86400.0
# Starter's limit: what an organisation is assumed to allow until its responses say otherwise.
DEFAULT_DAY_LIMIT = 1000
DEFAULT_SCHEDULED_SHARE = 0.10
# Status and the log warn when today's projected use passes this share of the limit.
WARN_SHARE = 0.80
# Today's projection extrapolates the rate of this many recent hours.
LIVE_RATE_HOURS = 3
# Live work always keeps at least this share of the limit free from scheduled work, even when quiet.
LIVE_FLOOR_SHARE = 0.05
KEY_GRACE = 2 * HOUR
BYTES = "bytes"
LAST_WRITE_BACK = "last_write_back"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if str(key).lower() == name:
            return None if value is None else str(value).strip()
    return None


# Answers given before the API ran: a rate limit's 429, and an access token refused (401, or 403 for a tenant
# not connected). Whether Xero counts them against the day is not documented (UNVERIFIED: a real organisation
# would show it by comparing X-DayLimit-Remaining before and after a deliberately expired token's call). Not
# counting them is the safe way to be wrong: the limit learned (remaining + calls counted) comes out lower,
# never higher than the real one.
REFUSED = frozenset({401, 403, 429})


def counted_by_xero(endpoint: str) -> bool:
    """Whether a call counts against an organisation's limits: the APIs (/api.xro/2.0/..., /payroll.xro/...),
    not the identity service's token endpoint nor /connections."""
    return ".xro/" in endpoint


# -- learning the limit (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class LimitState:
    """What the ledger knows of one organisation's day window."""

    limit: int | None = None  # learned; None until a response said something
    last_remaining: int | None = None
    calls_since_reset: int = 0  # calls answered since the last reset seen (or since counting began)
    reset_at: float | None = None  # when the last reset was seen (epoch seconds)

    @property
    def exact(self) -> bool:
        """True once a reset was seen: calls_since_reset then counts the whole Xero day."""
        return self.reset_at is not None


def learn_limit(state: LimitState, *, remaining: int | None, day_problem: bool, now: float,
                refused: bool = False) -> LimitState:
    """The state after one more Xero response (``remaining``: its X-DayLimit-Remaining, if any). A ``refused``
    call (``REFUSED``) is not counted as one of the day's: counted when Xero does not count it, it would make
    the learned limit higher than the real one by every refusal seen."""
    refused = refused or day_problem
    calls = state.calls_since_reset + (0 if refused else 1)
    reset_at = state.reset_at
    if remaining is not None and state.last_remaining is not None and remaining > state.last_remaining:
        calls, reset_at = (0 if refused else 1), now  # more left than before: Xero's day window started again
    elif reset_at is not None and now - reset_at >= DAY:
        calls, reset_at = (0 if refused else 1), day_started(state, now)  # a whole day since the last reset
    limit = state.limit
    if day_problem:
        # Xero refused for the day: the limit is what was spent.
        limit = max(calls, 1)
        remaining = 0
    elif remaining is not None:
        estimate = remaining + calls
        # Since a reset, the estimate is exact (a tier change shows at once); before, it only undercounts.
        limit = estimate if reset_at is not None else max(limit or 0, estimate)
    return LimitState(limit=limit, last_remaining=remaining if remaining is not None else state.last_remaining,
                      calls_since_reset=calls, reset_at=reset_at)


def day_started(state: LimitState, now: float) -> float:
    """Start of the organisation's current Xero day: from its last reset seen, else UTC midnight."""
    if state.reset_at is not None:
        return state.reset_at + math.floor((now - state.reset_at) / DAY) * DAY
    return math.floor(now / DAY) * DAY


# -- the planner's rule (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInputs:
    day_limit: int
    share: float  # of the day limit that scheduled work may take in any 24 h
    scheduled_used: int  # scheduled calls granted in the last 24 h
    day_used: int  # every call of the organisation's current Xero day
    live_expected: int  # live calls (webhook fetches, write-backs) still expected before the day resets


def scheduled_allowance(day_limit: int, share: float) -> int:
    return max(math.floor(day_limit * share + 1e-9), 1)


def live_reserve(inputs: PlanInputs) -> int:
    """Calls kept for live work until the day resets: what it is expected to need, never less than a floor."""
    return max(inputs.live_expected, math.ceil(inputs.day_limit * LIVE_FLOOR_SHARE))


def expected_live(live_last_24h: int, live_today: int) -> int:
    """Live calls still to come today, taking the last 24 hours as the pattern of a day: what they held beyond
    what today already used (so a quiet night does not starve a busy morning, nor a busy morning the rest)."""
    return max(live_last_24h - live_today, 0)


def plan_scheduled(inputs: PlanInputs, calls: int) -> str | None:
    """None when ``calls`` more scheduled calls fit; else why not ("share" or "live")."""
    if inputs.scheduled_used + calls > scheduled_allowance(inputs.day_limit, inputs.share):
        return "share"
    if inputs.day_used + calls + live_reserve(inputs) > inputs.day_limit:
        return "live"
    return None


# -- the ledger ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetView:
    """One organisation's budget as status shows it."""

    day_limit: int
    limit_learned: bool
    calls_24h: dict[str, int]
    egress_bytes_24h: int
    egress_bytes_month: int
    used_today: int
    projected_today: int
    scheduled_allowance: int
    deferred: dict[str, dict] = field(default_factory=dict)

    @property
    def warning(self) -> str | None:
        if self.projected_today > WARN_SHARE * self.day_limit:
            return (f"projected Xero calls today {self.projected_today} pass {int(WARN_SHARE * 100)} % of the "
                    f"day limit {self.day_limit}")
        return None

    def as_dict(self) -> dict:
        return {"day_limit": self.day_limit, "limit_learned": self.limit_learned, "calls_24h": self.calls_24h,
                "calls_24h_total": sum(self.calls_24h.values()), "used_today": self.used_today,
                "projected_today": self.projected_today, "scheduled_allowance": self.scheduled_allowance,
                "egress_bytes_24h": self.egress_bytes_24h, "egress_bytes_month": self.egress_bytes_month,
                "deferred": self.deferred, "warning": self.warning}


class BudgetLedger:
    """Counts every Xero response per organisation (connection) and learns its day limit."""

    def __init__(self, redis, *, clock: Clock | None = None, default_day_limit: int = DEFAULT_DAY_LIMIT,
                 key_prefix: str = "budget:xero", configured_limit: Callable[[int], int | None] | None = None) -> None:
        self._redis = redis
        self._clock = clock or SYSTEM_CLOCK
        self._default_day_limit = default_day_limit
        # An operator's cap per connection (connections.xero_daily_limit), if any: never exceeded.
        self._configured_limit = configured_limit
        self._prefix = key_prefix

    def key(self, connection_id: int, name: str) -> str:
        return f"{self._prefix}:{{{connection_id}}}:{name}"  # one hash tag per organisation

    def _hour_key(self, connection_id: int, hour: int) -> str:
        return self.key(connection_id, f"hour:{hour}")

    def _month_key(self, connection_id: int, now: float) -> str:
        return self.key(connection_id, "egress:" + datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m"))

    # -- writing -------------------------------------------------------------------------------

    def record(self, seen) -> None:
        """Count one response (the shared HTTP pipeline's ResponseSeen). Other vendors' responses, and Xero's
        that no organisation's limit counts (token refreshes, /connections), are ignored."""
        if seen.vendor != "xero" or seen.connection_id is None or not counted_by_xero(seen.endpoint):
            return
        now = self._clock.time()
        connection_id = int(seen.connection_id)
        hour_key = self._hour_key(connection_id, int(now // HOUR))
        month_key = self._month_key(connection_id, now)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(hour_key, seen.purpose or "unspecified", 1)
        pipe.hincrby(hour_key, BYTES, int(seen.bytes_received or 0))
        pipe.expire(hour_key, int(DAY + KEY_GRACE))
        pipe.incrby(month_key, int(seen.bytes_received or 0))
        pipe.expire(month_key, int(32 * DAY))
        if seen.purpose == WRITE_BACK:
            pipe.set(self.key(connection_id, LAST_WRITE_BACK), repr(now), ex=int(DAY))
        pipe.execute()
        headers = seen.limit_headers or {}
        raw = _header(headers, "x-daylimit-remaining")
        remaining = int(raw) if raw is not None and raw.lstrip("-").isdigit() and int(raw) >= 0 else None
        day_problem = seen.status == 429 and problem_scope(_header(headers, "x-rate-limit-problem")) == "day"
        before = self.limit_state(connection_id)
        after = self._update_limit(connection_id, remaining, day_problem, now, refused=seen.status in REFUSED)
        if after.limit != before.limit and after.limit is not None:
            log.info("budget.xero.limit_learned", extra={"connection_id": connection_id, "day_limit": after.limit,
                                                         "exact": after.exact})

    def listen(self, seen) -> None:
        """``record`` as a response listener: a failure is logged, never breaks the request it observed."""
        try:
            self.record(seen)
        except Exception:
            log.exception("budget.xero.record_failed")

    def _update_limit(self, connection_id: int, remaining: int | None, day_problem: bool, now: float, *,
                      refused: bool) -> LimitState:
        key = self.key(connection_id, "limit")
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    state = self._read_limit(pipe.get(key))
                    new = learn_limit(state, remaining=remaining, day_problem=day_problem, now=now, refused=refused)
                    pipe.multi()
                    pipe.set(key, json.dumps(new.__dict__))
                    pipe.execute()
                    return new
                except redis_lib.WatchError:
                    continue

    # -- reading -------------------------------------------------------------------------------

    @staticmethod
    def _read_limit(raw) -> LimitState:
        if raw is None:
            return LimitState()
        return LimitState(**json.loads(_text(raw)))

    def limit_state(self, connection_id: int) -> LimitState:
        return self._read_limit(self._redis.get(self.key(connection_id, "limit")))

    def day_limit(self, connection_id: int, state: LimitState | None = None) -> int:
        """The organisation's day limit as planning takes it: what its responses taught (before a reset is seen a
        low estimate, which keeps scheduled work safe), else the assumed default; never above an operator's cap."""
        state = state or self.limit_state(connection_id)
        return self._capped(connection_id, state.limit if state.limit else self._default_day_limit)

    def governing_day_limit(self, connection_id: int, state: LimitState | None = None) -> int:
        """The day limit the rate governor enforces for live work (and status reports against its counts).

        The governor counts from Xero's X-DayLimit-Remaining against this limit, so a limit below the truth
        refuses live work Xero would take: before a reset is seen the learned estimate is only a floor, and the
        default (Starter's 1,000, Xero's smallest tier) is the better one. Once exact, the learned limit."""
        state = state or self.limit_state(connection_id)
        limit = state.limit if state.exact and state.limit else max(state.limit or 0, self._default_day_limit)
        return self._capped(connection_id, limit)

    def _capped(self, connection_id: int, limit: int) -> int:
        cap = self._configured_limit(connection_id) if self._configured_limit else None
        return min(limit, cap) if cap else limit

    def _buckets(self, connection_id: int, since: float, now: float) -> list[dict[str, int]]:
        first, last = int(since // HOUR), int(now // HOUR)
        pipe = self._redis.pipeline(transaction=False)
        for hour in range(first, last + 1):
            pipe.hgetall(self._hour_key(connection_id, hour))
        return [{_text(k): int(v) for k, v in bucket.items()} for bucket in pipe.execute()]

    def calls_by_purpose(self, connection_id: int, hours: float = 24) -> dict[str, int]:
        """Calls in the last ``hours`` (whole hourly buckets, the current one included), by purpose."""
        now = self._clock.time()
        totals: dict[str, int] = {}
        for bucket in self._buckets(connection_id, now - (hours - 1) * HOUR, now):
            for name, count in bucket.items():
                if name not in (BYTES,):
                    totals[name] = totals.get(name, 0) + count
        return totals

    def hourly_calls(self, connection_id: int, hours: int = 24) -> list[int]:
        """Calls per hourly bucket over the last ``hours`` buckets (the current one last), every purpose."""
        now = self._clock.time()
        return [sum(n for name, n in bucket.items() if name != BYTES)
                for bucket in self._buckets(connection_id, now - (hours - 1) * HOUR, now)]

    def egress_bytes(self, connection_id: int, hours: float = 24) -> int:
        now = self._clock.time()
        return sum(b.get(BYTES, 0) for b in self._buckets(connection_id, now - (hours - 1) * HOUR, now))

    def egress_bytes_of_month(self, connection_id: int, at: float | None = None) -> int:
        """Bytes downloaded in the calendar month (UTC) of ``at`` (now by default): Xero bills egress by month."""
        when = self._clock.time() if at is None else at
        return int(_text(self._redis.get(self._month_key(connection_id, when)) or 0))

    def live_expected(self, connection_id: int, state: LimitState | None = None) -> int:
        """Live calls still expected before the organisation's day resets (``expected_live``)."""
        state = state or self.limit_state(connection_id)
        now = self._clock.time()

        def live(buckets) -> int:
            return sum(n for b in buckets for name, n in b.items() if name != BYTES and name not in SCHEDULED_PURPOSES)
        return expected_live(live(self._buckets(connection_id, now - 23 * HOUR, now)),
                             live(self._buckets(connection_id, day_started(state, now), now)))

    def used_today(self, connection_id: int, state: LimitState | None = None) -> int:
        """Calls of the organisation's current Xero day (exact once a reset was seen)."""
        state = state or self.limit_state(connection_id)
        now = self._clock.time()
        if state.exact:
            return state.calls_since_reset
        buckets = self._buckets(connection_id, day_started(state, now), now)
        return sum(n for b in buckets for name, n in b.items() if name != BYTES)

    def hours_left_today(self, connection_id: int, state: LimitState | None = None) -> float:
        state = state or self.limit_state(connection_id)
        now = self._clock.time()
        return max(day_started(state, now) + DAY - now, 0.0) / HOUR

    def last_write_back(self, connection_id: int) -> float | None:
        raw = self._redis.get(self.key(connection_id, LAST_WRITE_BACK))
        return float(_text(raw)) if raw is not None else None

    def view(self, connection_id: int, *, share: float = DEFAULT_SCHEDULED_SHARE,
             deferred: dict[str, dict] | None = None, log_warning: bool = True) -> BudgetView:
        """``log_warning``: False for a reader that reports the projection itself (the alerts, every minute)."""
        state = self.limit_state(connection_id)
        limit = self.day_limit(connection_id, state)
        now = self._clock.time()
        used = self.used_today(connection_id, state)
        recent = sum(self.calls_by_purpose(connection_id, LIVE_RATE_HOURS).values())
        projected = used + math.ceil(recent / LIVE_RATE_HOURS * self.hours_left_today(connection_id, state))
        view = BudgetView(
            day_limit=limit, limit_learned=state.limit is not None, calls_24h=self.calls_by_purpose(connection_id),
            egress_bytes_24h=self.egress_bytes(connection_id),
            egress_bytes_month=self.egress_bytes_of_month(connection_id, now),
            used_today=used, projected_today=projected, scheduled_allowance=scheduled_allowance(limit, share),
            deferred=deferred or {})
        if view.warning and log_warning:
            log.warning("budget.xero.projection_high", extra={"connection_id": connection_id,
                                                              "projected_today": projected, "day_limit": limit})
        return view


# -- the planner -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    purpose: str
    calls: int


@dataclass(frozen=True)
class Deferral:
    purpose: str
    reason: str  # "share" | "live"
    retry_after: float  # seconds
    detail: str


class BudgetSpent(Exception):
    """Scheduled work was deferred by the planner: its place (cursor, trigger) stays for later."""

    def __init__(self, deferral: Deferral) -> None:
        super().__init__(deferral.detail)
        self.deferral = deferral


class BudgetPlanner:
    """Grants scheduled Xero calls within the organisation's share of the day; live work is never asked.

    Each grant is a reservation (a sorted set scored by time, shared by every worker and taken under
    WATCH, so two workers cannot both take the last call). Denied work is recorded with its reason and
    shown by status until a later grant for the same purpose clears it."""

    def __init__(self, redis, ledger: BudgetLedger, *, clock: Clock | None = None,
                 share: float = DEFAULT_SCHEDULED_SHARE) -> None:
        self._redis = redis
        self._ledger = ledger
        self._clock = clock or SYSTEM_CLOCK
        self.share = share

    def _planned_key(self, connection_id: int) -> str:
        return self._ledger.key(connection_id, "planned")

    def _deferred_key(self, connection_id: int) -> str:
        return self._ledger.key(connection_id, "deferred")

    def inputs(self, connection_id: int, scheduled_used: int) -> PlanInputs:
        state = self._ledger.limit_state(connection_id)
        return PlanInputs(day_limit=self._ledger.day_limit(connection_id, state), share=self.share,
                          scheduled_used=scheduled_used, day_used=self._ledger.used_today(connection_id, state),
                          live_expected=self._ledger.live_expected(connection_id, state))

    def scheduled_used(self, connection_id: int) -> int:
        now = self._clock.time()
        return int(self._redis.zcount(self._planned_key(connection_id), f"({(now - DAY) * 1000:.0f}", "+inf"))

    def ask(self, connection_id: int, purpose: str, calls: int = 1) -> Grant | Deferral:
        if purpose not in SCHEDULED_PURPOSES:
            return Grant(purpose, calls)  # live work is only counted, never planned
        key = self._planned_key(connection_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    now = self._clock.time()
                    now_ms = round(now * 1000)
                    # Counted, not trimmed: a write here would abort this client's own transaction.
                    used = int(pipe.zcount(key, f"({now_ms - DAY * 1000:.0f}", "+inf"))
                    inputs = self.inputs(connection_id, used)
                    reason = plan_scheduled(inputs, calls)
                    if reason is not None:
                        pipe.unwatch()
                        deferral = self._deferral(connection_id, key, purpose, reason, inputs, calls, now)
                        self._note_deferral(connection_id, deferral, now)
                        return deferral
                    pipe.multi()
                    token = uuid.uuid4().hex
                    pipe.zremrangebyscore(key, "-inf", f"{now_ms - DAY * 1000:.0f}")
                    pipe.zadd(key, {f"{token}:{i}": now_ms for i in range(calls)})
                    pipe.expire(key, int(DAY + KEY_GRACE))
                    pipe.hdel(self._deferred_key(connection_id), purpose)
                    pipe.execute()
                    return Grant(purpose, calls)
                except redis_lib.WatchError:
                    continue

    def _deferral(self, connection_id: int, key: str, purpose: str, reason: str, inputs: PlanInputs, calls: int,
                  now: float) -> Deferral:
        if reason == "share":
            allowance = scheduled_allowance(inputs.day_limit, inputs.share)
            # Room comes back when enough of the oldest reservations age out of the 24 h window.
            index = max(inputs.scheduled_used + calls - allowance - 1, 0)
            live = self._redis.zrangebyscore(key, f"({(now - DAY) * 1000:.0f}", "+inf", withscores=True)
            oldest = live[index:index + 1]
            retry_after = (oldest[0][1] / 1000 + DAY - now) if oldest else HOUR
            detail = (f"{purpose}: scheduled work used {inputs.scheduled_used} of its {allowance} calls "
                      f"({inputs.share:.0%} of {inputs.day_limit}) in the last 24 h")
        else:
            retry_after = self._ledger.hours_left_today(connection_id) * HOUR
            detail = (f"{purpose}: {inputs.day_used} of {inputs.day_limit} calls used today; the rest is kept for "
                      f"webhook work ({live_reserve(inputs)} calls until the day resets)")
        return Deferral(purpose, reason, max(retry_after, 1.0), detail)

    def _note_deferral(self, connection_id: int, deferral: Deferral, now: float) -> None:
        key = self._deferred_key(connection_id)
        previous = self._redis.hget(key, deferral.purpose)
        seen = json.loads(_text(previous)) if previous else {"since": now, "count": 0}
        record = {"reason": deferral.reason, "detail": deferral.detail, "since": seen["since"],
                  "count": seen["count"] + 1, "retry_at": now + deferral.retry_after}
        self._redis.hset(key, deferral.purpose, json.dumps(record))
        self._redis.expire(key, int(2 * DAY))
        log.warning("budget.xero.deferred", extra={"connection_id": connection_id, "purpose": deferral.purpose,
                                                   "reason": deferral.reason, "retry_after": deferral.retry_after})

    def deferred(self, connection_id: int) -> dict[str, dict]:
        """Scheduled work waiting for budget, by purpose: reason, since when, how often asked, when to retry."""
        return {_text(k): json.loads(_text(v)) for k, v in self._redis.hgetall(self._deferred_key(connection_id)).items()}

    def view(self, connection_id: int) -> BudgetView:
        return self._ledger.view(connection_id, share=self.share, deferred=self.deferred(connection_id))

