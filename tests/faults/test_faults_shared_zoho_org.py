"""Two Xero tenants sharing one Zoho org, connected as a person does it (`connector connect xero --tenant B
--zoho-from A`): the org's one notification channel belongs to the first connection. Our own Zoho writes
for both tenants come back on it as echoes, and a person's edits in Zoho reach each tenant's own Xero; the
invariant holds both ways for both tenants."""

from __future__ import annotations

import pytest

from connector.store import audit as stages
from tests.faults.conftest import deliver_until_accepted
from tests.processes import wait_for

pytestmark = pytest.mark.faults


def _ends_as_echo(org, contact_id: str) -> bool:
    trail = org.deps.store.audit.trail(org.connection_id, "Contacts", org.zoho_person(contact_id, f"{contact_id}:primary")["id"])
    return bool(trail) and trail[-1].stage == stages.SKIPPED and (trail[-1].detail or {}).get("echo") is True


def test_two_tenants_sharing_one_zoho_org_sync_both_ways(shared_zoho_org):
    first, second = shared_zoho_org
    stack = first.stack
    tenants = (first, second)
    # Seeded contacts 0 and 3 of each tenant have a primary person (a first and last name of their own).
    contacts = {org.tenant_id: org.seed(contacts=4)["contact_ids"] for org in tenants}
    assert set(deliver_until_accepted(stack)) == {200}
    for org in tenants:
        org.assert_invariants()

    # Renamed in Xero: our updates of the Zoho people notify the first tenant's channel, for both tenants.
    for org in tenants:
        stack.control.call("POST", "xero/contacts", json_body={
            "tenant_id": org.tenant_id, "contact_id": contacts[org.tenant_id][0], "changes": {"LastName": "Renamed"}})
    assert set(deliver_until_accepted(stack)) == {200}
    for org in tenants:
        org.assert_invariants()
    assert set(stack.control.call("POST", "zoho/deliver")["statuses"]) <= {200, 403}  # 403: other tests' channels
    for org in tenants:
        wait_for(lambda org=org: _ends_as_echo(org, contacts[org.tenant_id][0]), timeout=90,
                 what=f"connection {org.connection_id} to recognise the echo of its own write")

    # A person edits one person of each tenant in Zoho: each edit reaches that tenant's Xero.
    for org, last_name in ((first, "Kowhai"), (second, "Rimu")):
        contact_id = contacts[org.tenant_id][3]
        org.edit_in_zoho(contact_id, last_name, key=f"{contact_id}:primary")
    assert set(stack.control.call("POST", "zoho/deliver")["statuses"]) <= {200, 403}
    for org, last_name in ((first, "Kowhai"), (second, "Rimu")):
        wait_for(lambda org=org, last_name=last_name: org.xero_has(contacts[org.tenant_id][3], last_name), timeout=90,
                 what=f"the Zoho edit to reach the Xero tenant of connection {org.connection_id}")
    assert not first.xero_has(contacts[first.tenant_id][3], "Rimu")
    assert set(deliver_until_accepted(stack)) == {200}  # Xero's webhooks for our write-backs
    for org in tenants:
        org.assert_invariants()
