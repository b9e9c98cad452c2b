"""The Zoho -> Xero direction under real faults: a salesperson's burst of new Zoho Accounts and won deals
(mapping.yaml create_in_xero and won_deals switched on) meets Xero answers lost after the create was applied,
429s and 503s on the creates, notifications delivered twice, and a worker process killed mid-create. After
recovery each Account is in Xero exactly once and linked both ways, each won deal has exactly one DRAFT
invoice with its amount, and Xero's webhooks for our own creates add nothing to Zoho."""

from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from connector.mapping import zoho_fields as zf
from connector.mapping_config import load_sync_config
from connector.pipeline.to_xero.deals import RECORD_TYPE as WON_DEAL
from tests.faults.conftest import RECOVERY_SECONDS, deliver_until_accepted
from tests.faults.harness import process_connected_to
from tests.processes import wait_for

pytestmark = pytest.mark.faults

WON_STAGE = "Closed Won"
# The deployment's mapping.yaml while this module runs: new Customer Accounts become Xero contacts, and a
# won deal becomes one draft invoice of its Amount on sales account 200.
MAPPING = f"""\
create_in_xero: {{modules: [Accounts], account_types: [Customer]}}
won_deals: {{enabled: true, stage: {WON_STAGE}, status: DRAFT, account_code: '200'}}
"""
ACCOUNTS, WON_DEALS = 6, 3
CONTACTS_PUT, INVOICES_PUT = "/api.xro/2.0/Contacts", "/api.xro/2.0/Invoices"

FAULTS = {
    # Xero applied the create and the answer never came: the retry's Idempotency-Key returns the first record.
    "xero-lost-answers": [dict(system="xero", kind="lost", count=2, delay=2.0, path_prefix=CONTACTS_PUT, method="PUT"),
                          dict(system="xero", kind="lost", count=2, delay=2.0, path_prefix=INVOICES_PUT, method="PUT")],
    "xero-429s-and-503s": [
        dict(system="xero", kind="status", count=3, status=429, path_prefix=CONTACTS_PUT, method="PUT",
             headers={"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}),
        dict(system="xero", kind="status", count=2, status=503, path_prefix=CONTACTS_PUT, method="PUT",
             body="The Xero API is temporarily unavailable"),
        dict(system="xero", kind="status", count=2, status=429, path_prefix=INVOICES_PUT, method="PUT",
             headers={"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}),
        dict(system="xero", kind="status", count=2, status=503, path_prefix=INVOICES_PUT, method="PUT",
             body="The Xero API is temporarily unavailable")],
    # The create is held open (then applied) while its worker process is SIGKILLed: another process redoes it.
    "worker-killed-mid-create": [dict(system="xero", kind="latency", count=1, delay=4.0, path_prefix=CONTACTS_PUT,
                                      method="PUT")],
}


@pytest.fixture(scope="module")
def creating_deployment(stack, deps):
    """The deployment with create_in_xero and won_deals on: mapping.yaml in its data dir, read by the worker
    when it starts (so the worker is restarted), and by this test process for the channel's events. Switched
    off again for the fault tests that follow."""
    mapping = Path(stack.env["CONNECTOR_DATA_DIR"]) / "mapping.yaml"
    mapping.parent.mkdir(parents=True, exist_ok=True)
    mapping.write_text(MAPPING)
    _restart_worker(stack)
    deps.sync_config = load_sync_config(mapping)
    try:
        yield stack
    finally:
        mapping.unlink()
        del deps.sync_config  # read again (defaults) when next needed
        _restart_worker(stack)


def _restart_worker(stack) -> None:
    stack.ensure_running()
    stack.worker.stop(timeout=10)
    stack.worker.kill_group()
    stack.start_worker()


@pytest.fixture
def crm_org(creating_deployment, org):
    channel = org.deps.ensure_zoho_channel(org.connection_id)  # as `connector connect zoho` does
    yield org
    # Later tests' Zoho records must not be announced to this test's connection.
    org.stack.control.call("POST", "zoho/channels/lapse", json_body={"channel_id": str(channel.channel_id)})


def _kill_the_child_creating(stack) -> None:
    port = urlsplit(stack.control.xero_url).port

    def caller() -> int | None:
        if not stack.control.in_flight("xero", path_prefix=CONTACTS_PUT, method="PUT"):
            return None
        return process_connected_to(stack.worker.children(), port)

    child = wait_for(caller, timeout=90, interval=0.05, what="a worker process creating a Xero contact")
    os.kill(child, signal.SIGKILL)


def _assert_faults_met(stack, tenant_id: str, faults: list[dict]) -> None:
    """The creates did meet the faults (a lost answer is a 504 after the work was done)."""
    calls = [r for r in stack.control.requests("xero") if r["tenant"] == tenant_id]
    for fault in faults:
        if fault["kind"] in ("lost", "status"):
            status = 504 if fault["kind"] == "lost" else fault["status"]
            met = [r for r in calls if r["path"].startswith(fault["path_prefix"]) and r["method"] == fault["method"]
                   and r["status"] == status]
            assert len(met) >= fault["count"], f"{fault}: only {len(met)} call(s) met it"


def _adopted(org, record_type: str, ids: list[str], key: str, value) -> list[str]:
    """Which of these records' audit trails say an earlier attempt's Xero record was adopted."""
    return [i for i in ids if any((e.detail or {}).get(key) == value
                                  for e in org.deps.store.audit.trail(org.connection_id, record_type, i))]


def _burst(org, number: int) -> tuple[list[str], dict[str, Decimal]]:
    """A salesperson adds Customer Accounts in Zoho and enters won deals on the first few of them."""
    control = org.stack.control
    accounts = [control.call("POST", "zoho/person-create", json_body={"module": "Accounts", "fields": {
        "Account_Name": f"Burst {number}-{n} {org.tenant_id[:8]} Ltd", "Account_Type": "Customer",
        "Phone": f"+64 9 555 {number:02d}{n:02d}"}})["id"] for n in range(1, ACCOUNTS + 1)]
    amounts: dict[str, Decimal] = {}
    for n, account in enumerate(accounts[:WON_DEALS], 1):
        amount = Decimal(f"{1000 * n + number}.50")
        deal = control.call("POST", "zoho/person-create", json_body={"module": "Deals", "fields": {
            "Deal_Name": f"Burst deal {number}-{n}", "Account_Name": {"id": account}, "Amount": str(amount),
            "Closing_Date": "2026-12-31", "Stage": WON_STAGE}})["id"]
        amounts[deal] = amount
    return accounts, amounts


def _deliver_zoho_twice(stack) -> None:
    """Zoho's notifications, each delivered, then delivered again (a redelivery)."""
    pending = stack.control.call("GET", "zoho/pending")["notifications"]
    assert pending, "the burst announced nothing"
    assert set(stack.control.call("POST", "zoho/deliver")["statuses"]) == {200}
    for notification in pending:
        assert requests.post(stack.zoho_hook_url, json=notification, timeout=10).status_code == 200


@pytest.mark.timeout(RECOVERY_SECONDS + 120)
@pytest.mark.parametrize("faults", list(FAULTS.values()), ids=list(FAULTS))
def test_new_accounts_and_won_deals_reach_xero_once_through_faults(crm_org, faults, request):
    org, stack = crm_org, crm_org.stack
    for fault in faults:
        stack.control.fault(**fault)
    accounts, amounts = _burst(org, list(FAULTS.values()).index(faults) + 1)
    _deliver_zoho_twice(stack)
    if request.node.callspec.id == "worker-killed-mid-create":
        _kill_the_child_creating(stack)

    def created() -> bool:
        numbers = [c.get("ContactNumber") for c in stack.control.xero_state(org.tenant_id)["contacts"]]
        invoiced = [i.get("Reference") for i in stack.control.xero_state(org.tenant_id)["invoices"]]
        return set(accounts) <= set(numbers) and set(amounts) <= set(invoiced)

    wait_for(created, timeout=RECOVERY_SECONDS, interval=1.0, what="every new Account and won deal in Xero")
    _assert_faults_met(stack, org.tenant_id, faults)
    # Xero's webhooks for our own creates come back: they must add nothing to Zoho.
    assert set(deliver_until_accepted(stack, max_events_per_post=5)) == {200}
    org.assert_invariants(timeout=RECOVERY_SECONDS, opted_in=frozenset(accounts), won_stage=WON_STAGE)

    xero = stack.control.xero_state(org.tenant_id)
    zoho = stack.control.zoho_records("Accounts")["Accounts"]
    for account in accounts:
        [contact] = [c for c in xero["contacts"] if c.get("ContactNumber") == account]
        [in_zoho] = [a for a in zoho if a["id"] == account]
        assert in_zoho.get(zf.ACCOUNT_XERO_ID) == contact["ContactID"]
    # A create whose answer never came (lost, or its caller killed) was adopted, not made again.
    if request.node.callspec.id != "xero-429s-and-503s":
        assert _adopted(org, "Accounts", accounts, "action", "matched"), "no contact create was settled by adoption"
    if request.node.callspec.id == "xero-lost-answers":
        assert _adopted(org, WON_DEAL, list(amounts), "adopted", True), "no invoice create was settled by adoption"
    # Nothing made in Zoho for our own creates: no second Account carries any of the new contacts' ids.
    ours = {c["ContactID"] for c in xero["contacts"]}
    assert len([a for a in zoho if a.get(zf.ACCOUNT_XERO_ID) in ours]) == len(ours) == ACCOUNTS
