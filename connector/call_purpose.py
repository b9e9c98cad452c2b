"""Why a Xero call is made, so the day's budget can be counted per kind of work.

TEMPORARY home: the shared HTTP pipeline (connector/http.py) defines the same ``call_purpose`` contextvar
and carries it on every ``ResponseSeen``; when it lands this module only re-exports it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

UNSPECIFIED = "unspecified"
WEBHOOK_FETCH = "webhook_fetch"
CATCH_UP = "catch_up"
PAYMENTS = "payments"
BACKFILL = "backfill"
WRITE_BACK = "write_back"
CHECK = "check"

PURPOSES = (WEBHOOK_FETCH, CATCH_UP, PAYMENTS, BACKFILL, WRITE_BACK, CHECK, UNSPECIFIED)
# Work the connector schedules itself: planned within the day's share. Everything else is live work
# (a webhook's fetch, a CRM edit written back) and is never denied by the planner.
SCHEDULED_PURPOSES = frozenset({CATCH_UP, PAYMENTS, BACKFILL, CHECK})

call_purpose: ContextVar[str] = ContextVar("call_purpose", default=UNSPECIFIED)


@contextmanager
def purpose(name: str) -> Iterator[None]:
    """Calls made inside the block are counted as ``name``."""
    token = call_purpose.set(name)
    try:
        yield
    finally:
        call_purpose.reset(token)


LIMIT_HEADERS = ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining", "X-Rate-Limit-Problem",
                 "Retry-After")


@dataclass(frozen=True)
class ResponseSeen:
    """TEMPORARY twin of the shared HTTP pipeline's observation of one response (same fields)."""

    vendor: str
    connection_id: int | None
    method: str
    endpoint: str
    status: int
    bytes_received: int
    purpose: str
    limit_headers: dict


def xero_response_seen(connection_id: int | None, method: str, url: str, response) -> ResponseSeen:
    headers = {name: response.headers[name] for name in LIMIT_HEADERS if name in response.headers}
    return ResponseSeen("xero", connection_id, method, urlsplit(url).path, response.status_code,
                        len(response.content or b""), call_purpose.get(), headers)
