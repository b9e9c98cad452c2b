"""Xero's rate limits per app and tenant: calls per minute, per day and in flight, and the app-wide
minute limit; the 429 answer with ``X-Rate-Limit-Problem`` and ``Retry-After``, and the
``X-*Limit-Remaining`` headers on every accounting response.

Page: https://developer.xero.com/documentation/guides/oauth2/limits. Windows are fixed and offset
randomly per tenant, as Xero's are; a day limit is kept per tenant, so tenants on different plans
can have different ones. Also here: what a request log shows of those limits (for tests and benches).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from werkzeug.wrappers import Response

from connector.clock import Clock


@dataclass
class Budget:
    """One tenant's fixed windows, offset randomly like Xero's."""

    minute_offset: float
    day_offset: float
    day_limit: int
    minute_window: int = -1
    minute_count: int = 0
    day_window: int = -1
    day_count: int = 0
    in_flight: int = 0


class RateLimiter:
    def __init__(self, clock: Clock, *, minute_limit: int, day_limit: int, concurrent_limit: int,
                 app_minute_limit: int) -> None:
        self.clock = clock
        self.minute_limit = minute_limit
        self.day_limit = day_limit  # for tenants added without their own
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        self._lock = threading.Lock()
        self._budgets: dict[str, Budget] = {}
        self._app_window = (-1, 0)

    def add_tenant(self, tenant_id: str, rng: random.Random, day_limit: int | None = None) -> None:
        with self._lock:
            self._budgets[tenant_id] = Budget(rng.uniform(0, 60), rng.uniform(0, 86400), day_limit or self.day_limit)

    def knows(self, tenant_id: str | None) -> bool:
        return tenant_id in self._budgets

    def set_day_limit(self, tenant_id: str, day_limit: int) -> None:
        with self._lock:
            self._budgets[tenant_id].day_limit = day_limit

    def spend_day_calls(self, tenant_id: str, calls: int) -> None:
        with self._lock:
            budget = self._budgets[tenant_id]
            day = math.floor((self.clock.time() - budget.day_offset) / 86400)
            if budget.day_window != day:
                budget.day_window, budget.day_count = day, 0
            budget.day_count += calls

    def admit(self, tenant_id: str) -> tuple[str | None, int]:
        """Count one call or name the breached limit with its Retry-After. Rejections are free."""
        now = self.clock.time()
        with self._lock:
            budget = self._budgets[tenant_id]
            minute = math.floor((now - budget.minute_offset) / 60)
            day = math.floor((now - budget.day_offset) / 86400)
            if budget.minute_window != minute:
                budget.minute_window, budget.minute_count = minute, 0
            if budget.day_window != day:
                budget.day_window, budget.day_count = day, 0
            app_minute = math.floor(now / 60)
            if self._app_window[0] != app_minute:
                self._app_window = (app_minute, 0)
            if budget.day_count >= budget.day_limit:
                return "day", _seconds_until((day + 1) * 86400 + budget.day_offset, now)
            if budget.minute_count >= self.minute_limit:
                return "minute", _seconds_until((minute + 1) * 60 + budget.minute_offset, now)
            if self._app_window[1] >= self.app_minute_limit:
                return "appminute", _seconds_until((app_minute + 1) * 60, now)
            if budget.in_flight >= self.concurrent_limit:
                return "concurrent", 1
            budget.minute_count += 1
            budget.day_count += 1
            budget.in_flight += 1
            self._app_window = (app_minute, self._app_window[1] + 1)
            return None, 0

    def release(self, tenant_id: str) -> None:
        """An admitted call has finished: it no longer counts as in flight."""
        with self._lock:
            self._budgets[tenant_id].in_flight -= 1

    def headers(self, tenant_id: str | None) -> dict:
        """The remaining-calls headers; a tenant the sandbox does not know shows full budgets."""
        with self._lock:
            budget = self._budgets.get(tenant_id) if tenant_id else None
            now = self.clock.time()
            app_used = self._app_window[1] if self._app_window[0] == math.floor(now / 60) else 0
            minute_used = day_used = 0
            day_limit = self.day_limit
            if budget is not None:
                day_limit = budget.day_limit
                if budget.minute_window == math.floor((now - budget.minute_offset) / 60):
                    minute_used = budget.minute_count
                if budget.day_window == math.floor((now - budget.day_offset) / 86400):
                    day_used = budget.day_count
        return {
            "X-DayLimit-Remaining": str(max(day_limit - day_used, 0)),
            "X-MinLimit-Remaining": str(max(self.minute_limit - minute_used, 0)),
            "X-AppMinLimit-Remaining": str(max(self.app_minute_limit - app_used, 0)),
        }

    @staticmethod
    def rejection(problem: str, retry_after: int) -> Response:
        """Xero's 429: an empty body, the breached limit and when to retry."""
        return Response("", status=429, headers={"X-Rate-Limit-Problem": problem, "Retry-After": str(retry_after)})


def _seconds_until(moment: float, now: float) -> int:
    return max(math.ceil(moment - now), 1)


# ------------------------------------------------------------------ what Xero saw (tests, benchmarks)


def max_calls_in_window(records: list, seconds: float = 60.0) -> int:
    """Most requests (RequestRecord) that started within any ``seconds``-long window."""
    starts = sorted(r.started for r in records)
    peak, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= seconds:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def max_in_flight(records: list) -> int:
    """Most requests (RequestRecord) in flight at once; touching calls do not overlap."""
    edges = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records if r.finished is not None])
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts first
        running += step
        peak = max(peak, running)
    return peak
