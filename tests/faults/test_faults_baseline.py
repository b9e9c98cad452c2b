"""The control experiment: with no fault, a burst ends in the promised state (the harness and the
invariant check agree with a healthy deployment)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import deliver_until_accepted

pytestmark = pytest.mark.faults


def test_a_burst_without_faults_ends_with_every_record_in_zoho_once(org):
    seeded = org.seed(contacts=20, invoices_per_contact=1)
    assert seeded["invoice_ids"]
    statuses = deliver_until_accepted(org.stack, max_events_per_post=10)
    assert set(statuses) == {200}
    org.assert_invariants()

    # Deals: invoices whose Reference names a deal are linked to it and the deal shows their money.
    deal_of = org.invoices_for_deals(3)
    assert len(set(deal_of.values())) == 3
    assert set(deliver_until_accepted(org.stack, max_events_per_post=10)) == {200}
    org.assert_invariants()
