"""The purposes a Xero call is made for, and which of them the day-budget planner schedules.

The purpose travels in the shared HTTP pipeline's ``call_purpose`` contextvar (connector/http.py), which
tags every ``ResponseSeen`` (``with call_purpose(CATCH_UP): ...``).
"""

from __future__ import annotations


UNSPECIFIED = "unspecified"
WEBHOOK_FETCH = "webhook_fetch"
CATCH_UP = "catch_up"
PAYMENTS = "payments"
BACKFILL = "backfill"
WRITE_BACK = "write_back"
CRM_CREATE = "crm_create"  # a new Zoho Account or Contact matched to, or created as, a Xero contact
CHECK = "check"
# A won Zoho deal becoming its Xero invoice (pipeline/to_xero/deals.py): live work, at webhook priority.
WON_DEAL_INVOICE = "won_deal_invoice"

# Work the connector schedules itself: planned within the day's share. Everything else is live work
# (a webhook's fetch, a CRM edit written back) and is never denied by the planner.
SCHEDULED_PURPOSES = frozenset({CATCH_UP, PAYMENTS, BACKFILL, CHECK})
