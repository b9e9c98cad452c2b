"""Property: whatever happens to an invoice's money in Xero — partial payments, overpayments Xero refuses,
reversals, credit-note allocations — the Zoho record mapped from Xero's invoice after each step shows
Xero_Amount_Paid / Xero_Amount_Due equal to Xero's to the cent, and Xero's status (PAID exactly when nothing is due) mapped through the status map.

Xero is the sandbox (in process, its validation and arithmetic); each invoice is read back as the API
serves it (``to_json`` → ``loads_from_api``, Decimal money) and mapped with the pure ``map_invoice``.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.json_codec import loads_from_api
from connector.mapping import map_invoice
from connector.mapping.invoices import XERO_TO_ZOHO_INVOICE_STATUS
from connector.mapping import zoho_fields as zf
from connector.sandbox.xero import XeroSandbox, XeroValidationError, to_json
from tests.conftest import property_examples

CENT = Decimal("0.01")
cents = st.integers(min_value=1, max_value=50_000).map(lambda c: Decimal(c) * CENT)
lines = st.lists(
    st.fixed_dictionaries({"Quantity": st.integers(1, 4), "UnitAmount": cents,
                           "TaxType": st.sampled_from(["OUTPUT2", "NONE"])}),
    min_size=1, max_size=3,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 100)),  # a share (percent) of what is due, at least a cent
        st.tuples(st.just("overpay"), st.integers(1, 10_000)),  # cents more than due: Xero refuses it
        st.tuples(st.just("reverse"), st.integers(0, 20)),  # the n-th live payment (mod how many)
        st.tuples(st.just("credit"), st.integers(1, 100), st.integers(0, 5_000)),  # share of due, extra credit
    ),
    max_size=8,
)


def _read(xero, tenant, invoice_id) -> dict:
    return loads_from_api(to_json(xero.invoice(tenant, invoice_id)))


def _assert_zoho_matches(xero, tenant, invoice_id) -> dict:
    invoice = _read(xero, tenant, invoice_id)
    record = map_invoice(invoice, product_ids={}, placeholder_product_id="4876876000000400001")
    paid, due, total = (Decimal(str(invoice[k])) for k in ("AmountPaid", "AmountDue", "Total"))
    credited = Decimal(str(invoice.get("AmountCredited", 0)))
    assert Decimal(str(record[zf.INVOICE_AMOUNT_PAID])) == paid
    assert Decimal(str(record[zf.INVOICE_AMOUNT_DUE])) == due
    assert all(Decimal(str(record[f])) == Decimal(str(record[f])).quantize(CENT)
               for f in (zf.INVOICE_AMOUNT_PAID, zf.INVOICE_AMOUNT_DUE))
    assert due == total - paid - credited and due >= 0
    # Xero's status agrees with the money, and Zoho shows it through the (default) status map.
    assert invoice["Status"] == ("PAID" if due == 0 else "AUTHORISED")
    assert record["Status"] == XERO_TO_ZOHO_INVOICE_STATUS[invoice["Status"]]
    return invoice


@settings(max_examples=property_examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines, steps=steps)
def test_zoho_amounts_equal_xero_after_any_payment_history(lines, steps):
    xero = XeroSandbox()
    tenant = xero.add_tenant("Property Ltd")
    contact = xero.create_contact(tenant, Name="Payer Ltd")["ContactID"]
    line_items = [{"Description": f"line {i}", "AccountCode": "200", **line} for i, line in enumerate(lines)]
    invoice_id = xero.create_invoice(tenant, contact, line_items, Status="AUTHORISED")["InvoiceID"]
    payments: list[str] = []
    invoice = _assert_zoho_matches(xero, tenant, invoice_id)
    for step in steps:
        due = Decimal(str(invoice["AmountDue"]))
        kind = step[0]
        if kind == "pay" and due > 0:
            amount = max(CENT, (due * step[1] / 100).quantize(CENT))
            payments.append(xero.add_payment(tenant, invoice_id, amount)["PaymentID"])
        elif kind == "overpay":
            before = invoice
            try:
                xero.add_payment(tenant, invoice_id, due + Decimal(step[1]) * CENT)
            except XeroValidationError:
                pass
            else:
                raise AssertionError("Xero accepted a payment larger than the amount due")
            assert _read(xero, tenant, invoice_id)["AmountPaid"] == before["AmountPaid"]
        elif kind == "reverse" and payments:
            xero.reverse_payment(tenant, payments.pop(step[1] % len(payments)))
        elif kind == "credit" and due > 0:
            allocate = max(CENT, (due * step[1] / 100).quantize(CENT))
            total = allocate + Decimal(step[2]) * CENT
            note = xero.create_credit_note(tenant, contact, [
                {"Description": "credit", "Quantity": 1, "UnitAmount": total, "AccountCode": "200", "TaxType": "NONE"}])
            xero.allocate_credit_note(tenant, note["CreditNoteID"], invoice_id, allocate)
        invoice = _assert_zoho_matches(xero, tenant, invoice_id)
