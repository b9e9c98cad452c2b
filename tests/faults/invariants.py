"""The promise every fault test ends on, read from the sandbox's own state (and the audit trail):

- every Xero contact and invoice of the tenant is in Zoho exactly once (by its Xero id),
- with its latest values (the mapping of Xero's current record), and each invoice's totals, amount due
  and line count equal to Xero's to the cent,
- and each record's audit trail went received -> fetched -> mapped in that order and ends in written, or
  in skipped (nothing left to write: another push, e.g. an invoice's that brought its contact along, wrote
  it), or in a state the test explains (e.g. parked while a connection waits for a person).
"""

from __future__ import annotations

from decimal import Decimal

from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import map_contact
from connector.mapping.invoices import expected_totals
from connector.store import audit as stages

PIPELINE = (stages.RECEIVED, stages.FETCHED, stages.MAPPED)
# Account fields compared with the mapping of Xero's current contact (text the connector owns).
ACCOUNT_FIELDS = ("Account_Name", "Account_Number", "Phone", zf.ACCOUNT_TAX_NUMBER, zf.ACCOUNT_XERO_STATUS)


def cents(value) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _in_order(trail: list[str], wanted: tuple[str, ...]) -> bool:
    stages_left = iter(trail)
    return all(any(stage == step for stage in stages_left) for step in wanted)


def violations(control, audit, *, connection_id: int, tenant_id: str,
               terminal: frozenset[str] = frozenset({stages.WRITTEN, stages.SKIPPED})) -> list[str]:
    """Everything that breaks the promise right now (empty when it holds)."""
    problems: list[str] = []
    xero = control.xero_state(tenant_id)
    zoho = control.zoho_records("Accounts", "Invoices")
    contact_ids = {c["ContactID"] for c in xero["contacts"]}
    invoice_ids = {i["InvoiceID"] for i in xero["invoices"]}
    accounts: dict[str, list[dict]] = {}
    for account in zoho["Accounts"]:
        if account.get(zf.ACCOUNT_XERO_ID) in contact_ids:
            accounts.setdefault(account[zf.ACCOUNT_XERO_ID], []).append(account)
    invoices: dict[str, list[dict]] = {}
    for invoice in zoho["Invoices"]:
        if invoice.get(zf.INVOICE_XERO_ID) in invoice_ids:
            invoices.setdefault(invoice[zf.INVOICE_XERO_ID], []).append(invoice)

    for contact in xero["contacts"]:
        cid = contact["ContactID"]
        found = accounts.get(cid, [])
        if len(found) != 1:
            problems.append(f"contact {cid} ({contact['Name']}) is in Zoho {len(found)} times")
            continue
        wanted = map_contact(contact)["account"]
        for name in ACCOUNT_FIELDS:
            if wanted.get(name) != found[0].get(name):
                problems.append(f"contact {cid}: Zoho {name}={found[0].get(name)!r}, Xero says {wanted.get(name)!r}")

    for invoice in xero["invoices"]:
        iid = invoice["InvoiceID"]
        found = invoices.get(iid, [])
        if len(found) != 1:
            problems.append(f"invoice {iid} ({invoice.get('InvoiceNumber')}) is in Zoho {len(found)} times")
            continue
        zoho_invoice = found[0]
        totals = expected_totals(invoice)
        for zoho_name, xero_value in (("Grand_Total", totals["Total"]), ("Sub_Total", totals["SubTotal"]),
                                      (zf.INVOICE_AMOUNT_DUE, invoice.get("AmountDue"))):
            if cents(zoho_invoice.get(zoho_name)) != cents(xero_value):
                problems.append(f"invoice {iid}: Zoho {zoho_name}={zoho_invoice.get(zoho_name)}, Xero {xero_value}")
        lines = len(zoho_invoice.get("Invoiced_Items") or [])
        if lines != len(invoice.get("LineItems") or []):
            problems.append(f"invoice {iid}: {lines} lines in Zoho, {len(invoice.get('LineItems') or [])} in Xero")

    for record_type, ids in (("contact", contact_ids), ("invoice", invoice_ids)):
        for record_id in sorted(ids):
            trail = [e.stage for e in audit.trail(connection_id, record_type, record_id)]
            if not _in_order(trail, PIPELINE):
                problems.append(f"{record_type} {record_id}: audit trail {trail} lacks received>fetched>mapped")
            elif trail[-1] not in terminal:
                problems.append(f"{record_type} {record_id}: audit trail ends in {trail[-1]!r}: {trail}")
    return problems
