"""Zoho's side of the trip: a notification channel that lapsed overnight, and a connection revoked while
its notifications are in flight. Both heal through the deployment's own tools (beat's channel renewal,
`connector connect zoho`), and nothing a person changed in Zoho is lost."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults.conftest import deliver_until_accepted
from tests.faults.harness import BIN
from tests.processes import ROOT, wait_for

pytestmark = pytest.mark.faults


def _synced_org(org, contacts: int = 4) -> list[str]:
    org.deps.ensure_zoho_channel(org.connection_id)  # as `connector connect zoho` does
    ids = org.seed(contacts=contacts)["contact_ids"]
    assert set(deliver_until_accepted(org.stack)) == {200}
    org.assert_invariants()
    return ids


def _celery_call(stack, task: str) -> None:
    """What beat sends, sent the way an operator would (`celery call`) instead of waiting for its schedule."""
    done = subprocess.run([str(BIN / "celery"), "-A", "workers.app", "call", task], env=stack.env_for_cli(),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_channel_lapsed_overnight_is_recreated_and_its_gap_reconciled(org):
    stack = org.stack
    contacts = _synced_org(org)
    [channel] = [c for c in stack.control.call("GET", "zoho/channels")["channels"]
                 if c["notify_url"] == stack.zoho_hook_url and c["channel_id"] in
                 {ch.channel_id for ch in org.deps.store.channels.for_connection(org.connection_id)}]
    stack.control.call("POST", "zoho/channels/lapse", json_body={"channel_id": str(channel["channel_id"])})

    org.edit_in_zoho(contacts[0], "Overnight")  # nobody is told: the channel is gone
    _celery_call(stack, "connector.renew_zoho_channels")

    wait_for(lambda: org.xero_has(contacts[0], "Overnight"), timeout=90, what="the missed edit to reach Xero")
    live = {str(c["channel_id"]) for c in stack.control.call("GET", "zoho/channels")["channels"]}
    assert str(channel["channel_id"]) in live
    assert set(deliver_until_accepted(stack)) == {200}  # Xero's webhook for our write-back
    org.assert_invariants()


def test_a_connection_revoked_with_notifications_in_flight_resumes_after_reconnecting(org):
    stack = org.stack
    contacts = _synced_org(org)
    org.edit_in_zoho(contacts[0], "Revoked-One")
    org.edit_in_zoho(contacts[1], "Revoked-Two")
    stack.control.call("POST", "zoho/revoke", json_body={"refresh_token": org.zoho_refresh_token})
    statuses = stack.control.call("POST", "zoho/deliver")["statuses"]
    assert statuses and set(statuses) <= {200, 403}  # 403: channels of other tests' connections, if any lapsed

    wait_for(lambda: org.deps.store.connections.get(org.connection_id).state == "needs_reauth", timeout=90,
             what="the connection to need a person")

    # The person reconnects Zoho with the operator's tool.
    stack.connect("zoho", "--connection", str(org.connection_id))
    assert org.deps.store.connections.get(org.connection_id).state == "active"

    try:
        wait_for(lambda: org.xero_has(contacts[0], "Revoked-One") and org.xero_has(contacts[1], "Revoked-Two"),
                 timeout=90, what="the edits made while the connection was revoked to reach Xero")
    except AssertionError as exc:
        person_id = org.zoho_person(contacts[0])["id"]
        trail = [(e.direction, e.stage, e.detail) for e in
                 org.deps.store.audit.trail(org.connection_id, "Contacts", person_id)][-4:]
        raise AssertionError(f"{exc}; parked work: {org.deps.store.parked.count(org.connection_id)}; "
                             f"audit trail of Zoho contact {person_id} ends {trail}\n{stack.logs()}") from None
    assert set(deliver_until_accepted(stack)) == {200}
    org.assert_invariants()
