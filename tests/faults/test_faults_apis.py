"""Xero and Zoho misbehave mid-burst as they do in production: Zoho 500s, timeouts after the write was
applied, 429s and 207 partial failures; Xero 429 storms and 503s. Each burst still ends with every record
in Zoho exactly once, with Xero's values and totals."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import RECOVERY_SECONDS, ZOHO_RATE_LIMIT_WAIT, deliver_until_accepted

pytestmark = pytest.mark.faults


def _zoho_error(code: str, message: str) -> str:
    return json.dumps({"code": code, "details": {}, "message": message, "status": "error"})


FAULTS = {
    "zoho-500s": [dict(system="zoho", kind="status", count=4, status=500, path_prefix="/crm/v8/", method="POST",
                       body=_zoho_error("INTERNAL_ERROR", "Internal Server Error"))],
    # Zoho applied the write, the answer never came back: the retry must not add a second copy.
    "zoho-timeout-after-write": [
        dict(system="zoho", kind="lost", count=1, delay=2.0, path_prefix="/crm/v8/Accounts", method="POST"),
        dict(system="zoho", kind="lost", count=2, delay=2.0, path_prefix="/crm/v8/Invoices", method="POST")],
    "zoho-429s": [dict(system="zoho", kind="status", count=2, status=429, path_prefix="/crm/v8/", method="POST",
                       body=_zoho_error("TOO_MANY_REQUESTS", "too many requests continuously"))],
    "zoho-207-partial": [dict(system="zoho", kind="partial", count=3)],
    # Each 429 holds the tenant for its Retry-After (the governor's penalty), so the storm's calls meet it one
    # at a time: the burst waits out 15 x Retry-After. One second, the least Retry-After can say, keeps all
    # fifteen refusals and the same code path at half the wait of two.
    "xero-429-storm": [dict(system="xero", kind="status", count=15, status=429, path_prefix="/api.xro/2.0/",
                            headers={"Retry-After": "1", "X-Rate-Limit-Problem": "minute"})],
    "xero-503s": [dict(system="xero", kind="status", count=4, status=503, path_prefix="/api.xro/2.0/",
                       body="The Xero API is temporarily unavailable")],
}


@pytest.mark.parametrize("faults", list(FAULTS.values()), ids=list(FAULTS))
def test_a_burst_through_vendor_faults_ends_with_every_record_in_zoho_once(org, faults):
    stack = org.stack
    for fault in faults:
        stack.control.fault(**fault)
    org.seed(contacts=12, invoices_per_contact=1)
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}
    org.assert_invariants()

    # The same faults again while invoices naming deals arrive: the links and the deals' figures end right.
    for fault in faults:
        stack.control.fault(**fault)
    deal_of = org.invoices_for_deals(2)
    assert len(set(deal_of.values())) == 2
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}
    # These few invoices go in one batch, which may meet each fault in turn: e.g. two Zoho throttles park it
    # twice for ZOHO_RATE_LIMIT_WAIT (Zoho sends no Retry-After).
    org.assert_invariants(timeout=RECOVERY_SECONDS + 2 * ZOHO_RATE_LIMIT_WAIT)
