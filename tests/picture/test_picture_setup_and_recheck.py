"""`connector setup-zoho` against an org without our custom fields, and the org re-read on a TTL and by beat."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from connector.clock import ManualClock
from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf
from connector.sandbox.xero_seed import seed_demo_org
from connector.sandbox.zoho import ZohoSandbox
from connector.store import audit as stages
from connector.zoho_setup import NEEDED_FIELDS, ORG_RECORD_ID, ORG_RECORD_TYPE
from workers.cli import main
from workers.zoho_tasks import recheck_zoho_orgs

LINE = [{"Description": "Consulting", "Quantity": 2, "UnitAmount": "49.95", "AccountCode": "200"}]


def test_setup_zoho_check_lists_what_is_missing_then_creates_it_and_the_pipeline_syncs(make_system, capsys):
    picture = make_system(zoho=ZohoSandbox(xero_fields=False))
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    invoice = picture.xero.create_invoice(picture.tenant_id, contacts[0], LINE, Status="AUTHORISED")["InvoiceID"]
    picture.fetch("contacts", contacts)
    with pytest.raises(ConfigError, match="Zoho Accounts has no field Xero_Contact_ID"):
        picture.push()

    assert main(["setup-zoho", "--check"]) == 1
    out = capsys.readouterr().out
    for needed in NEEDED_FIELDS:
        assert f"missing {needed.module}.{needed.api_name} ({needed.data_type}" in out
    assert "Setup > Customization > Modules and Fields > Accounts as Single Line (255) labelled 'Xero Contact ID'" in out
    assert picture.zoho.calls(path_prefix="/crm/v8/settings/fields", method="POST") == []  # --check changes nothing
    assert "Xero_Contact_ID" not in picture.zoho.fields["Accounts"]

    assert main(["setup-zoho", "--connection", str(picture.connection_id)]) == 0
    out = capsys.readouterr().out
    assert f"created {len(NEEDED_FIELDS)} custom field(s)" in out
    assert all(f"created {f.module}.{f.api_name}" in out for f in NEEDED_FIELDS)
    assert picture.zoho.fields["Accounts"][zf.ACCOUNT_XERO_ID].unique
    assert picture.zoho.fields["Invoices"][zf.INVOICE_AMOUNT_DUE].data_type == "currency"
    assert main(["setup-zoho", "--check"]) == 0
    assert "every custom field the connector needs exists" in capsys.readouterr().out
    assert main(["setup-zoho"]) == 0 and "nothing to create" in capsys.readouterr().out
    assert main(["setup-zoho", "--connection", "999"]) == 2

    # The pipeline now works against the org setup-zoho prepared: contacts and the invoice land.
    assert picture.sync("contacts", contacts).written == contacts
    assert {a[zf.ACCOUNT_XERO_ID] for a in picture.zoho.records("Accounts")} == set(contacts)
    assert picture.sync("invoices", [invoice]).written == [invoice]
    [zoho_invoice] = picture.zoho.records("Invoices")
    assert zoho_invoice[zf.INVOICE_XERO_ID] == invoice
    due = Decimal(str(picture.xero.invoice(picture.tenant_id, invoice)["AmountDue"]))
    assert due > 0 and Decimal(str(zoho_invoice[zf.INVOICE_AMOUNT_DUE])) == due


def _org_reads(picture) -> int:
    return len(picture.zoho.calls(path_prefix="/crm/v8/settings/modules", method="GET"))


def test_the_org_read_is_trusted_for_the_ttl_then_read_again(make_system):
    clock = ManualClock()
    picture = make_system(clock=clock)
    deps, connection = picture.deps, picture.connection
    assert deps.settings.zoho_org_ttl == 3600.0
    assert deps.zoho_org(connection).has_invoices
    reads = _org_reads(picture)
    # Someone deletes a field in Zoho's Setup: within the TTL this worker still trusts its read...
    del picture.zoho.fields["Accounts"][zf.ACCOUNT_XERO_ID]
    clock.advance(3599)
    assert deps.zoho_org(connection).missing == ()
    assert _org_reads(picture) == reads
    # ...and once the TTL has passed it reads the org again and stops with the field's name.
    clock.advance(2)
    with pytest.raises(ConfigError, match="Zoho Accounts has no field Xero_Contact_ID"):
        deps.zoho_org(connection)
    assert _org_reads(picture) == reads + 1
    # An unusable org is not cached: once the field is back the next push works without waiting an hour.
    assert main(["setup-zoho"]) == 0
    assert deps.zoho_org(connection).missing == ()


def test_beat_recheck_reports_a_missing_field_once_and_again_after_a_repair(make_system, caplog):
    clock = ManualClock()
    picture = make_system(clock=clock)
    deps, connection = picture.deps, picture.connection
    audit = deps.store.audit
    deps.zoho_org(connection)
    assert recheck_zoho_orgs() == 0
    assert audit.trail(picture.connection_id, ORG_RECORD_TYPE, ORG_RECORD_ID) == []

    del picture.zoho.fields["Contacts"][zf.CONTACT_PERSON_KEY]
    with caplog.at_level(logging.ERROR, logger="connector.zoho_setup"):
        assert [recheck_zoho_orgs() for _ in range(3)] == [1, 0, 0]
    errors = [r for r in caplog.records if "zoho.org.fields_missing" in r.getMessage()]
    assert len(errors) == 1 and "Zoho Contacts has no field Xero_Person_Key" in errors[0].getMessage()
    [entry] = audit.trail(picture.connection_id, ORG_RECORD_TYPE, ORG_RECORD_ID)
    assert entry.stage == stages.FAILED and entry.detail["missing"] == ["Contacts.Xero_Person_Key"]
    assert "connector setup-zoho" in entry.detail["how_to_fix"][0]
    # The re-check also refreshed this worker's cache: pushes stop now, not an hour later.
    with pytest.raises(ConfigError, match="Xero_Person_Key"):
        picture.push()

    # Repaired: nothing new is reported; a later deletion is reported again, once.
    assert main(["setup-zoho"]) == 0
    assert recheck_zoho_orgs() == 0
    assert deps.zoho_org(connection).missing == ()
    del picture.zoho.fields["Accounts"][zf.ACCOUNT_OUTSTANDING]
    assert [recheck_zoho_orgs(), recheck_zoho_orgs()] == [1, 0]
    trail = audit.trail(picture.connection_id, ORG_RECORD_TYPE, ORG_RECORD_ID)
    assert [e.detail["missing"] for e in trail] == [["Contacts.Xero_Person_Key"], ["Accounts.Xero_Outstanding"]]
