"""The purposes a Xero call is made for, and which of them the day-budget planner schedules.

The purpose travels in the shared HTTP pipeline's ``call_purpose`` contextvar (connector/http.py), which
tags every ``ResponseSeen``; ``purpose(name)`` is that context manager under the name the tasks use.
"""

from __future__ import annotations

from connector.http import call_purpose

UNSPECIFIED = "unspecified"
WEBHOOK_FETCH = "webhook_fetch"
CATCH_UP = "catch_up"
PAYMENTS = "payments"
BACKFILL = "backfill"
WRITE_BACK = "write_back"
CHECK = "check"

# Work the connector schedules itself: planned within the day's share. Everything else is live work
# (a webhook's fetch, a CRM edit written back) and is never denied by the planner.
SCHEDULED_PURPOSES = frozenset({CATCH_UP, PAYMENTS, BACKFILL, CHECK})

purpose = call_purpose  # ``with purpose(CATCH_UP): ...``
