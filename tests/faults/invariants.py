"""The promise every fault test ends on, read from the sandbox's own state (and the audit trail):

- every Xero contact and invoice of the tenant is in Zoho exactly once (by its Xero id),
- with its latest values (the mapping of Xero's current record), and each invoice's totals, amount due
  and line count equal to Xero's to the cent,
- each Account's money figures equal what Xero's records say: outstanding and overdue equal the
  contact's own Balances, and the others (total invoiced, credit, last invoice and payment, status)
  equal the arithmetic over Xero's current invoices,
- each Deal of the tenant's Accounts with invoices linked to it (the invoice's Deal lookup in Zoho) shows
  the figures of those invoices as Xero has them now (invoiced, paid, outstanding, credited, last payment
  date, status), and each invoice whose Reference names one deal of its Account is linked to that deal,
- no such Deal has more than one Xero invoice made for it (Reference exactly its id, as a won deal's
  invoice is made: pipeline/to_xero/deals.py), and, where won deals are invoiced (``won_stage``), each
  Deal in that stage has exactly one, in mapping.yaml's status (DRAFT by default) and of the deal's Amount
  (its one line, tax exclusive: the SubTotal),
- and each record's audit trail went received -> fetched -> mapped in that order and ends in written, or
  in skipped (nothing left to write: another push, e.g. an invoice's that brought its contact along, wrote
  it), or in a state the test explains (e.g. parked while a connection waits for a person);
- the other way: each person of the tenant's contacts is in Zoho once, and the fields that travel both
  ways (names, email, phones) are equal on both sides, so a person's edit in Zoho has reached Xero; and
  the Zoho-side audit trail of each of the tenant's Zoho records ends the same way, under the tenant's
  connection and under every other connection sharing its Zoho org (``sharing``), which must never have
  taken the tenant's records for its own;
- a Zoho Account or Contact is never in Xero twice: no two of the tenant's Xero contacts carry the same
  Zoho record id as their ContactNumber (the creation path, pipeline/to_xero/contacts.py), and each of
  ``opted_in`` (Zoho Account ids that passed mapping.yaml's create_in_xero filter) is there exactly once,
  by its ContactNumber or the Account's own Xero id.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import account_money, map_contact
from connector.mapping.deals import deal_figures, deal_record, referenced_deal_ids
from connector.mapping.money import money_figures
from connector.mapping.invoices import expected_totals
from connector.mapping_config import WRITABLE_TO_XERO
from connector.store import audit as stages

PIPELINE = (stages.RECEIVED, stages.FETCHED, stages.MAPPED)
# Account fields compared with the mapping of Xero's current contact (text the connector owns).
ACCOUNT_FIELDS = ("Account_Name", "Account_Number", "Phone", zf.ACCOUNT_TAX_NUMBER, zf.ACCOUNT_XERO_STATUS)
# Person fields compared both ways: those a person's edit in Zoho may write back to Xero.
PERSON_FIELDS = WRITABLE_TO_XERO["Contacts"]


def cents(value) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _grouped(records: list[dict], key, wanted=lambda key: True) -> dict[str, list[dict]]:
    """``records`` by ``key(record)``, in their order, those whose key is ``wanted``."""
    grouped: dict[str, list[dict]] = {}
    for record in records:
        if wanted(found := key(record)):
            grouped.setdefault(found, []).append(record)
    return grouped


def _in_order(trail: list[str], wanted: tuple[str, ...]) -> bool:
    stages_left = iter(trail)
    return all(any(stage == step for stage in stages_left) for step in wanted)


def violations(control, audit, *, connection_id: int, tenant_id: str,
               terminal: frozenset[str] = frozenset({stages.WRITTEN, stages.SKIPPED}),
               sharing: tuple[int, ...] = (), won_stage: str | None = None, won_status: str = "DRAFT",
               opted_in: frozenset[str] = frozenset()) -> list[str]:
    """Everything that breaks the promise right now (empty when it holds)."""
    problems: list[str] = []
    xero = control.xero_state(tenant_id)
    zoho = control.zoho_records("Accounts", "Contacts", "Invoices", "Deals")
    contact_ids = {c["ContactID"] for c in xero["contacts"]}
    invoice_ids = {i["InvoiceID"] for i in xero["invoices"]}
    accounts = _grouped(zoho["Accounts"], lambda a: a.get(zf.ACCOUNT_XERO_ID), lambda xid: xid in contact_ids)
    people = _grouped(zoho["Contacts"], lambda p: str(p.get(zf.CONTACT_PERSON_KEY) or ""),
                      lambda key: key.split(":", 1)[0] in contact_ids)
    invoices = _grouped(zoho["Invoices"], lambda i: i.get(zf.INVOICE_XERO_ID), lambda xid: xid in invoice_ids)

    invoices_of = _grouped(xero["invoices"], lambda i: i["Contact"]["ContactID"])
    for contact in xero["contacts"]:
        cid = contact["ContactID"]
        found = accounts.get(cid, [])
        if len(found) != 1:
            problems.append(f"contact {cid} ({contact['Name']}) is in Zoho {len(found)} times")
            continue
        mapped = map_contact(contact)
        wanted = mapped["account"]
        for name in ACCOUNT_FIELDS:
            if wanted.get(name) != found[0].get(name):
                problems.append(f"contact {cid}: Zoho {name}={found[0].get(name)!r}, Xero says {wanted.get(name)!r}")
        problems += _money_problems(cid, contact, invoices_of.get(cid, []), found[0])
        for person in mapped["contacts"]:
            key = person[zf.CONTACT_PERSON_KEY]
            in_zoho = people.get(key, [])
            if len(in_zoho) != 1:
                problems.append(f"person {key} is in Zoho {len(in_zoho)} times")
                continue
            for name in PERSON_FIELDS:
                if (person.get(name) or None) != (in_zoho[0].get(name) or None):
                    problems.append(f"person {key}: Zoho {name}={in_zoho[0].get(name)!r}, "
                                    f"Xero says {person.get(name)!r}")

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

    problems += _deal_problems(xero["invoices"], invoices, accounts, zoho["Deals"])
    problems += _creation_problems(xero["contacts"], zoho["Accounts"] + zoho["Contacts"], opted_in)
    problems += _won_deal_problems(xero["invoices"], accounts, zoho["Deals"], won_stage, won_status)

    for record_type, ids in (("contact", contact_ids), ("invoice", invoice_ids)):
        for record_id in sorted(ids):
            trail = [e.stage for e in audit.trail(connection_id, record_type, record_id)]
            if not _in_order(trail, PIPELINE):
                problems.append(f"{record_type} {record_id}: audit trail {trail} lacks received>fetched>mapped")
            elif trail[-1] not in terminal:
                problems.append(f"{record_type} {record_id}: audit trail ends in {trail[-1]!r}: {trail}")
    zoho_records = [("Accounts", a["id"]) for found in accounts.values() for a in found]
    zoho_records += [("Contacts", p["id"]) for found in people.values() for p in found]
    for module, zoho_id in zoho_records:
        for owner in (connection_id, *sharing):
            trail = [e.stage for e in audit.trail(owner, module, zoho_id)]
            if trail and trail[-1] not in terminal:
                problems.append(f"Zoho {module} {zoho_id}: audit trail of connection {owner} ends in "
                                f"{trail[-1]!r}: {trail}")
    return problems


def _creation_problems(xero_contacts: list[dict], zoho_records: list[dict], opted_in: frozenset[str]) -> list[str]:
    zoho_ids = {str(r["id"]) for r in zoho_records}
    numbered: dict[str, list[str]] = {}
    for contact in xero_contacts:
        number = str(contact.get("ContactNumber") or "")
        if number in zoho_ids or number in opted_in:
            numbered.setdefault(number, []).append(contact["ContactID"])
    problems = [f"Zoho record {zid} is in Xero {len(cids)} times: {cids}" for zid, cids in numbered.items()
                if len(cids) > 1]
    linked = {str(r["id"]) for r in zoho_records if r.get(zf.ACCOUNT_XERO_ID)}
    problems += [f"opted-in Zoho Account {zid} is not in Xero" for zid in sorted(opted_in)
                 if zid not in numbered and zid not in linked]
    return problems


def _money_problems(cid: str, contact: dict, invoices: list[dict], account: dict) -> list[str]:
    """The Account's money fields against Xero: Balances for outstanding/overdue, the rest from the invoices.

    The fault tests create no credit notes (the control's Xero state does not list them), so the
    invoices, with their embedded payments, are all of the customer's documents here."""
    figures = money_figures(invoices=invoices, base_currency=None, today=datetime.now(timezone.utc).date())
    balances = (contact.get("Balances") or {}).get("AccountsReceivable") or {}
    figures["outstanding"], figures["overdue"] = cents(balances.get("Outstanding")), cents(balances.get("Overdue"))
    problems = []
    for name, value in account_money(figures).items():
        in_zoho = account.get(name)
        same = cents(in_zoho) == cents(value) if isinstance(value, Decimal) else (in_zoho or None) == (value or None)
        if not same:
            problems.append(f"contact {cid}: Zoho {name}={in_zoho!r}, Xero's records say {value!r}")
    return problems


def _lookup_id(value) -> str | None:
    return str(value["id"]) if isinstance(value, dict) and value.get("id") else None


def _won_deal_problems(xero_invoices: list[dict], accounts: dict[str, list[dict]], zoho_deals: list[dict],
                       won_stage: str | None, won_status: str) -> list[str]:
    """A deal is invoiced at most once (never doubled), and exactly once when won and won deals are invoiced:
    in ``won_status``, for the deal's Amount (SubTotal: its one line is tax exclusive, mapping/won_deals.py)."""
    ours = {a[0]["id"] for a in accounts.values() if a}
    made_for = _grouped([i for i in xero_invoices if i.get("Type") == "ACCREC"
                         and i.get("Status") not in ("DELETED", "VOIDED")], lambda i: str(i.get("Reference") or ""))
    problems = []
    for deal in zoho_deals:
        if _lookup_id(deal.get("Account_Name")) not in ours:
            continue
        made = made_for.get(str(deal["id"]), [])
        won = won_stage is not None and deal.get("Stage") == won_stage
        if len(made) > 1 or (won and len(made) != 1):
            problems.append(f"deal {deal['id']} ({deal.get('Stage')}) has {len(made)} Xero invoices made for it")
        elif won and made[0].get("Status") != won_status:
            problems.append(f"deal {deal['id']}: its Xero invoice is {made[0].get('Status')}, not {won_status}")
        elif won and deal.get("Amount") is not None and cents(made[0].get("SubTotal")) != cents(deal["Amount"]):
            problems.append(f"deal {deal['id']}: its Xero invoice's SubTotal is {made[0].get('SubTotal')}, "
                            f"the deal's Amount {deal['Amount']}")
    return problems


def _deal_problems(xero_invoices: list[dict], zoho_invoices: dict[str, list[dict]],
                   accounts: dict[str, list[dict]], zoho_deals: list[dict]) -> list[str]:
    """Each Deal of the tenant's Accounts against Xero: its linked invoices' figures, and the links the
    Reference rule must have made (a Reference naming one deal of the invoice's Account)."""
    account_of_contact = {cid: found[0]["id"] for cid, found in accounts.items() if len(found) == 1}
    deals = {str(d["id"]): d for d in zoho_deals if _lookup_id(d.get("Account_Name")) in account_of_contact.values()}
    members: dict[str, list[dict]] = {}
    problems = []
    for invoice in xero_invoices:
        found = zoho_invoices.get(invoice["InvoiceID"], [])
        if len(found) != 1:
            continue  # reported above
        linked = _lookup_id(found[0].get(zf.INVOICE_DEAL))
        if linked in deals:
            members.setdefault(linked, []).append(invoice)
        account = account_of_contact.get(invoice["Contact"]["ContactID"])
        named = [d for d in referenced_deal_ids(invoice.get("Reference"))
                 if d in deals and _lookup_id(deals[d].get("Account_Name")) == account]
        if len(named) == 1 and linked != named[0]:
            problems.append(f"invoice {invoice['InvoiceID']}: its Reference names deal {named[0]}, "
                            f"Zoho links it to {linked!r}")
    today = datetime.now(timezone.utc).date()
    for deal_id, linked_invoices in members.items():
        wanted = deal_record(deal_figures(linked_invoices, base_currency=None, today=today))
        for name, value in wanted.items():
            in_zoho = deals[deal_id].get(name)
            same = cents(in_zoho) == cents(value) if isinstance(value, Decimal) else (in_zoho or None) == (value or None)
            if not same:
                problems.append(f"deal {deal_id}: Zoho {name}={in_zoho!r}, Xero's records of its "
                                f"{len(linked_invoices)} invoice(s) say {value!r}")
    return problems
