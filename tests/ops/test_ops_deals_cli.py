"""`connector deals unassigned` lists the invoices no rule placed; `connector deals link` links one by hand,
and later syncs keep that link."""

from __future__ import annotations

from decimal import Decimal

from workers.cli import main

LINES = [{"Description": "Consulting", "Quantity": Decimal(2), "UnitAmount": Decimal("50.00"), "AccountCode": "200",
          "TaxType": "NONE"}]


def _deal(embedded, account, name):
    return embedded.zoho.person_create("Deals", Deal_Name=name, Account_Name={"id": account},
                                       Closing_Date="2026-06-30", Stage="Qualification")["id"]


def test_an_unplaced_invoice_is_listed_then_linked_by_hand_for_good(embedded, capsys):
    contact = embedded.xero.create_contact(embedded.tenant_id, Name="Two Deals Ltd")["ContactID"]
    cid = str(embedded.connection_id)
    assert main(["replay", cid, "contact", contact]) == 0
    account = embedded.deps.store.links.get(embedded.connection_id, "contact", contact).zoho_id
    _deal(embedded, account, "First")
    second = _deal(embedded, account, "Second")
    invoice = embedded.xero.create_invoice(embedded.tenant_id, contact, LINES)["InvoiceID"]
    assert main(["replay", cid, "invoice", invoice]) == 0
    capsys.readouterr()

    assert main(["deals", "unassigned"]) == 0
    out = capsys.readouterr().out
    assert f"invoice {invoice} (contact {contact}): " in out and "the account has 2 open deals" in out
    assert main(["status"]) == 0
    assert "invoices in no deal: 1" in capsys.readouterr().out

    assert main(["deals", "link", invoice, second]) == 0
    assert f"invoice {invoice} now belongs to deal {second}" in capsys.readouterr().out
    zoho_invoice = embedded.zoho.record("Invoices", embedded.deps.store.links.get(embedded.connection_id, "invoice",
                                                                                  invoice).zoho_id)
    assert zoho_invoice["Deal"]["id"] == second
    assert embedded.zoho.record("Deals", second)["Xero_Invoiced"] == 100.0
    assert main(["deals", "unassigned"]) == 0
    assert "every invoice" in capsys.readouterr().out

    embedded.xero.update_invoice(embedded.tenant_id, invoice, Reference="changed in Xero")
    assert main(["replay", cid, "invoice", invoice]) == 0
    decision = embedded.deps.store.deal_links.decisions(embedded.connection_id, [invoice])[invoice]
    assert (decision["deal_id"], decision["rule"]) == (second, "manual")
    trail = embedded.deps.store.audit.trail(embedded.connection_id, "invoice_deal", invoice)
    assert [(e.detail["rule"], e.detail["deal_id"]) for e in trail] == [("unassigned", None), ("manual", second)]


def test_link_refuses_an_unknown_invoice_or_deal(embedded, capsys):
    assert main(["deals", "link", "no-such-invoice", "4876876000000499999"]) == 2
    assert "no Xero invoice no-such-invoice has been synced" in capsys.readouterr().err
