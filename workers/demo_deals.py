"""The demo's Deals: an invoice whose Xero Reference names a Zoho deal lands on that deal, and the deal's
figures before and after a payment (connector/pipeline/deals.py); a deal won in Zoho becomes one draft Xero
invoice, however often Zoho notifies (connector/pipeline/to_xero/deals.py)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal


from connector.mapping import zoho_fields
from connector.mapping.deals import DEAL_MONEY_FIELDS
from workers.demo_zoho import deliver_twice, enable_channel
from workers.embedded import wait_until

DEMO_LINES = [{"Description": "Winter stock", "Quantity": Decimal(4), "UnitAmount": Decimal("250.00"),
               "AccountCode": "200", "TaxType": "NONE"}]


def _figures(record: dict | None) -> str:
    if not record:
        return "no figures yet"
    names = DEAL_MONEY_FIELDS
    return (f"invoiced {record.get(names['invoiced'])}, paid {record.get(names['paid'])}, "
            f"outstanding {record.get(names['outstanding'])}, last payment {record.get(names['last_payment_date'])}, "
            f"{record.get(names['payment_status'])}")


def deal_by_reference(deps, xero, zoho, connection_id: int, tenant_id: str, contact_ids: list[str],
                      hook_url: str, timeout: float) -> tuple[bool, list[str]]:
    """A salesperson's deal in Zoho; finance puts its id in the Xero invoice's Reference; the invoice is
    linked to it and the deal shows the money, before and after the customer pays half."""
    from workers.xero_tasks import poll_xero

    contact_id = next((c for c in contact_ids if deps.store.links.get(connection_id, "contact", c)), None)
    if contact_id is None:
        return False, ["FAILED: no contact reached Zoho, so no deal could be made for one"]
    account = deps.store.links.get(connection_id, "contact", contact_id).zoho_id
    deal = zoho.person_create("Deals", Deal_Name="Winter stock order", Account_Name={"id": account},
                              Closing_Date="2026-06-30", Stage="Negotiation/Review")["id"]
    invoice = xero.create_invoice(tenant_id, contact_id, DEMO_LINES, Reference=f"Deal {deal}")
    xero.deliver_webhooks(hook_url)

    def linked() -> bool:
        link = deps.store.links.get(connection_id, "invoice", invoice["InvoiceID"])
        record = zoho.record("Invoices", link.zoho_id) if link else None
        return bool(record and (record.get(zoho_fields.INVOICE_DEAL) or {}).get("id") == deal
                    and (zoho.record("Deals", deal) or {}).get(DEAL_MONEY_FIELDS["invoiced"]))

    if not wait_until(linked, timeout=timeout):
        return False, [f"FAILED: {invoice['InvoiceNumber']} (Reference 'Deal {deal}') was not linked to its deal"]
    lines = [f"deal 'Winter stock order': {invoice['InvoiceNumber']} linked by its Xero Reference 'Deal {deal}'",
             f"  before payment: {_figures(zoho.record('Deals', deal))}"]
    xero.add_payment(tenant_id, invoice["InvoiceID"], Decimal("500.00"))
    poll_xero.apply_async(args=[connection_id, ["payments"]])
    invoice_in_zoho = deps.store.links.get(connection_id, "invoice", invoice["InvoiceID"]).zoho_id

    def notes() -> list[dict]:
        return [n for n in zoho.records("Notes") if n["Parent_Id"]["id"] == invoice_in_zoho]

    def paid() -> bool:  # the deal's figures are written before the invoice's notes
        figure = (zoho.record("Deals", deal) or {}).get(DEAL_MONEY_FIELDS["paid"])
        return figure is not None and Decimal(str(figure)) == Decimal("500.00") and bool(notes())

    if not wait_until(paid, timeout=timeout):
        return False, lines + ["FAILED: the payment of 500.00 did not reach the deal and its invoice's notes"]
    lines.append(f"  after payment:  {_figures(zoho.record('Deals', deal))}")
    lines.append(f"  on the invoice in Zoho: {len(notes())} payment note(s): "
                 + "; ".join(n["Note_Title"] for n in notes()))
    return True, lines


WON_DEAL_CHANNEL = "1000000068004"


def won_deal_invoice(deps, xero, zoho, connection_id: int, tenant_id: str, contact_ids: list[str],
                     notify_url: str, timeout: float) -> tuple[bool, list[str]]:
    """A salesperson wins a deal in Zoho; Zoho notifies twice; ONE draft invoice appears in Xero
    (pipeline/to_xero/deals.py, switched on here as mapping.yaml ``won_deals`` would)."""
    deps.sync_config = dataclasses.replace(deps.sync_config, won_deal_invoices=True, won_deal_account_code="200",
                                           won_deal_tax_type="NONE")
    contact_id = next((c for c in contact_ids if deps.store.links.get(connection_id, "contact", c)), None)
    if contact_id is None:
        return False, ["FAILED: no contact reached Zoho, so no deal could be won for one"]
    account = deps.store.links.get(connection_id, "contact", contact_id).zoho_id
    enable_channel(deps, connection_id, WON_DEAL_CHANNEL, "demo-deals-channel-token", ["Deals.edit"], notify_url)
    deal = zoho.person_create("Deals", Deal_Name="Harbour store fit-out", Account_Name={"id": account},
                              Closing_Date="2026-06-30", Stage="Negotiation/Review", Amount=Decimal("2400"))["id"]
    zoho.person_edit("Deals", deal, Stage="Closed Won")
    sent = [n for n in zoho.pending_notifications() if n["channel_id"] == WON_DEAL_CHANNEL]
    deliver_twice(zoho, sent, notify_url)  # Zoho delivers the same notification again

    def invoices() -> list[dict]:
        return [i for i in xero.invoices(tenant_id) if i.get("Reference") == deal]

    def done() -> bool:
        trail = deps.store.audit.trail(connection_id, "won_deal", deal)
        return bool(invoices()) and len([e for e in trail if e.stage in ("written", "skipped")]) >= 2

    if not wait_until(done, timeout=timeout):
        return False, [f"FAILED: winning deal {deal} made {len(invoices())} invoice(s) in Xero, not one"]
    found = invoices()
    [invoice] = found if len(found) == 1 else [None]
    if invoice is None:
        return False, [f"FAILED: winning deal {deal} made {len(found)} invoices in Xero, not one"]
    return True, [f"won deal 'Harbour store fit-out' (Closed Won, notified {len(sent) * 2} times): "
                  f"{len(found)} {invoice['Status']} invoice {invoice['InvoiceNumber']} in Xero for "
                  f"{invoice['Total']} {invoice['CurrencyCode']}, Reference {deal}"]
