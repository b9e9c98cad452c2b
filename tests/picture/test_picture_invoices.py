"""Invoices with lines, payments and credit notes reach Zoho with Xero's money to the cent."""

from __future__ import annotations

from decimal import Decimal

from connector.mapping import zoho_fields as zf
from connector.sandbox.zoho import FieldSpec
from connector.sandbox.xero_seed import seed_demo_org, seed_invoices


def _zoho_invoice(picture, invoice_id):
    link = picture.deps.store.links.get(picture.connection_id, "invoice", invoice_id)
    return picture.zoho.record("Invoices", link.zoho_id)


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_invoices_before_their_contacts_arrive_with_every_line_and_xero_totals(picture):
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=6)
    invoice_ids = seed_invoices(picture.xero, picture.tenant_id, contacts, per_contact=2)

    outcome = picture.sync("invoices", invoice_ids)  # no contact pushed yet: the push brings them along

    assert not outcome.failed, outcome.failed
    assert sorted(outcome.written) == sorted(invoice_ids)
    for invoice_id in invoice_ids:
        xero_invoice = picture.xero.invoice(picture.tenant_id, invoice_id)
        zoho_invoice = _zoho_invoice(picture, invoice_id)
        assert _money(zoho_invoice["Grand_Total"]) == _money(xero_invoice["Total"])
        assert _money(zoho_invoice["Sub_Total"]) == _money(xero_invoice["SubTotal"])
        assert _money(zoho_invoice[zf.INVOICE_AMOUNT_DUE]) == _money(xero_invoice["AmountDue"])
        assert len(zoho_invoice["Invoiced_Items"]) == len(xero_invoice["LineItems"])
        account_link = picture.deps.store.links.get(picture.connection_id, "contact", xero_invoice["Contact"]["ContactID"])
        assert zoho_invoice["Account_Name"]["id"] == account_link.zoho_id
    # Lines without an item share the one placeholder product; the batch wrote each module once.
    assert [p["Product_Name"] for p in picture.zoho.records("Products")] == ["Xero line without an item"]
    writes = [(w["module"], w["op"]) for w in picture.zoho.writes()]
    # ... and the payments the seeded invoices carry became notes on them, one insert for the batch.
    assert writes == [("Accounts", "upsert"), ("Contacts", "upsert"), ("Products", "upsert"), ("Invoices", "upsert"),
                      ("Notes", "insert")]
    assert all(w["trigger"] == [] for w in picture.zoho.writes())  # workflows off by default


def test_payment_reversal_and_credit_note_update_amounts_status_and_balances(picture):
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    lines = [{"Description": "Consulting", "Quantity": Decimal(3), "UnitAmount": Decimal("100.00"),
              "AccountCode": "200", "TaxType": "NONE"}]
    invoice = picture.xero.create_invoice(picture.tenant_id, contact, lines)
    invoice_id = invoice["InvoiceID"]
    picture.sync("invoices", [invoice_id])
    lines_before = [line["id"] for line in _zoho_invoice(picture, invoice_id)["Invoiced_Items"]]

    partial = picture.xero.add_payment(picture.tenant_id, invoice_id, Decimal("100.00"))
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", partial["PaymentID"],
                                              source_updated_at=_when(partial), payload=partial)
    assert picture.push().related("payments", [partial["PaymentID"]]).written == [partial["PaymentID"]]
    zoho_invoice = _zoho_invoice(picture, invoice_id)
    assert _money(zoho_invoice[zf.INVOICE_AMOUNT_PAID]) == Decimal("100.00")
    assert _money(zoho_invoice[zf.INVOICE_AMOUNT_DUE]) == Decimal("200.00")
    # A header-only change leaves the lines alone (no duplicated lines).
    assert [line["id"] for line in zoho_invoice["Invoiced_Items"]] == lines_before
    account = picture.zoho.record("Accounts", picture.deps.store.links.get(picture.connection_id, "contact", contact).zoho_id)
    assert _money(account[zf.ACCOUNT_OUTSTANDING]) == Decimal("200.00")

    reversed_payment = picture.xero.reverse_payment(picture.tenant_id, partial["PaymentID"])
    picture.deps.store.snapshots.put_if_newer(picture.connection_id, "payments", partial["PaymentID"],
                                              source_updated_at=_when(reversed_payment), payload=reversed_payment)
    picture.push().related("payments", [partial["PaymentID"]])
    assert _money(_zoho_invoice(picture, invoice_id)[zf.INVOICE_AMOUNT_DUE]) == Decimal("300.00")

    credit = picture.xero.create_credit_note(picture.tenant_id, contact, [
        {"Description": "Goodwill", "Quantity": Decimal(1), "UnitAmount": Decimal("300.00"), "AccountCode": "200",
         "TaxType": "NONE"}])
    picture.xero.allocate_credit_note(picture.tenant_id, credit["CreditNoteID"], invoice_id, Decimal("300.00"))
    picture.fetch("creditnotes", [credit["CreditNoteID"]])
    assert picture.push().related("creditnotes", [credit["CreditNoteID"]]).written == [credit["CreditNoteID"]]
    settled = _zoho_invoice(picture, invoice_id)
    assert _money(settled[zf.INVOICE_AMOUNT_DUE]) == Decimal("0.00")
    assert picture.xero.invoice(picture.tenant_id, invoice_id)["Status"] == "PAID"


def test_voided_invoice_is_cancelled_not_deleted(picture):
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    invoice = picture.xero.create_invoice(picture.tenant_id, contact, [
        {"Description": "Widget", "Quantity": Decimal(2), "UnitAmount": Decimal("9.99"), "AccountCode": "200"}])
    picture.sync("invoices", [invoice["InvoiceID"]])
    picture.xero.void_invoice(picture.tenant_id, invoice["InvoiceID"])
    picture.sync("invoices", [invoice["InvoiceID"]])
    assert _zoho_invoice(picture, invoice["InvoiceID"])["Status"] == "Cancelled"
    assert not [w for w in picture.zoho.writes() if w["op"] == "delete"]


def test_a_refused_record_fails_alone_with_zohos_code(picture):
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=3)
    picture.fetch("contacts", contacts)
    # An org whose admin shortened Account_Number to 3: Zoho refuses those records in a 207/400.
    picture.xero.update_contact(picture.tenant_id, contacts[1], AccountNumber="A1")
    picture.fetch("contacts", [contacts[1]])
    picture.zoho.fields["Accounts"]["Account_Number"] = FieldSpec("Account_Number", "text", 3)
    outcome = picture.push().contacts(contacts)
    assert set(outcome.failed) == {contacts[0], contacts[2]} and outcome.written == [contacts[1]]
    trail = picture.deps.store.audit.trail(picture.connection_id, "contact", contacts[0])
    assert trail[-1].stage == "failed" and trail[-1].detail["error_code"] == "INVALID_DATA"


def _when(payment):
    from connector.mapping.xero_values import parse_xero_date

    return parse_xero_date(payment["UpdatedDateUTC"])
