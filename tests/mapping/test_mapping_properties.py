"""Property tests: any schema-shaped Xero record maps, and money survives exactly.

Xero arithmetic used to build invoices (OpenAPI LineItem.LineAmount, round half-up to the cent;
Xero's exact rounding mode on ties is UNVERIFIED, the mapper takes LineAmount as reported anyway):
    LineAmount = round2(Q * U * (100 - DiscountRate) / 100)  or  round2(Q * U) - DiscountAmount
    TaxAmount  = round2(LineAmount * rate)              (Exclusive)
               = round2(LineAmount * rate / (1 + rate)) (Inclusive: tax inside the amount)
               = 0                                       (NoTax)
    SubTotal = sum of tax-exclusive amounts, TotalTax = sum of TaxAmount, Total = SubTotal + TotalTax.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.mapping import expected_totals, invoice_items, map_contact, map_invoice
from connector.mapping import zoho_fields as zf
from tests.conftest import property_examples

CENT = Decimal("0.01")


def round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def as_json_number(draw: st.DrawFn, value: Decimal) -> Any:
    """The same number as a JSON parser might hand it over: Decimal, float or str."""
    return draw(st.sampled_from([value, float(value), str(value)]))


# --- contacts ------------------------------------------------------------------------------------

maybe_text = st.one_of(st.just(""), st.text(max_size=60), st.text(max_size=300))
emails = st.one_of(st.just(""), st.emails().map(str), st.text(max_size=40))
money_2dp = st.decimals(min_value=Decimal("-1e10"), max_value=Decimal("1e10"), places=2,
                        allow_nan=False, allow_infinity=False)


@st.composite
def addresses(draw: st.DrawFn) -> dict[str, Any]:
    address: dict[str, Any] = {"AddressType": draw(st.sampled_from(["POBOX", "STREET"]))}
    for key in ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "City", "Region",
                "PostalCode", "Country", "AttentionTo"):
        if draw(st.booleans()):
            address[key] = draw(maybe_text)
    return address


@st.composite
def phones(draw: st.DrawFn) -> dict[str, Any]:
    phone: dict[str, Any] = {"PhoneType": draw(st.sampled_from(["DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"]))}
    for key, size in (("PhoneNumber", 50), ("PhoneAreaCode", 10), ("PhoneCountryCode", 20)):
        if draw(st.booleans()):
            phone[key] = draw(st.text(max_size=size))
    return phone


@st.composite
def contact_persons(draw: st.DrawFn) -> dict[str, Any]:
    person: dict[str, Any] = {}
    for key, strategy in (("FirstName", maybe_text), ("LastName", maybe_text), ("EmailAddress", emails),
                          ("IncludeInEmails", st.booleans())):
        if draw(st.booleans()):
            person[key] = draw(strategy)
    return person


@st.composite
def xero_contacts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Decimal]]:
    contact: dict[str, Any] = {
        "ContactID": str(draw(st.uuids())),
        "Name": draw(st.text(min_size=1, max_size=255).filter(str.strip)),
    }
    optional = {
        "ContactNumber": st.text(max_size=50),
        "AccountNumber": st.text(max_size=50),
        "ContactStatus": st.sampled_from(["ACTIVE", "ARCHIVED", "GDPRREQUEST"]),
        "FirstName": maybe_text,
        "LastName": maybe_text,
        "EmailAddress": emails,
        "TaxNumber": st.text(max_size=50),
        "DefaultCurrency": st.sampled_from(["NZD", "AUD", "USD", "GBP", "EUR"]),
        "Website": st.one_of(st.just(""), st.text(max_size=200)),
        "Addresses": st.lists(addresses(), max_size=3),
        "Phones": st.lists(phones(), max_size=5),
        "ContactPersons": st.lists(contact_persons(), max_size=4),
        "IsCustomer": st.booleans(),
        "IsSupplier": st.booleans(),
        "UpdatedDateUTC": st.integers(min_value=0, max_value=4_102_444_800_000).map(lambda ms: f"/Date({ms}+0000)/"),
        "ContactGroups": st.just([]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            contact[key] = draw(strategy)
    balances: dict[str, Decimal] = {}
    if draw(st.booleans()):
        receivable: dict[str, Any] = {}
        for key in ("Outstanding", "Overdue"):
            if draw(st.booleans()):
                balances[key] = draw(money_2dp)
                receivable[key] = as_json_number(draw, balances[key])
        contact["Balances"] = {"AccountsReceivable": receivable,
                               "AccountsPayable": {"Outstanding": 0.0, "Overdue": 0.0}}
    return contact, balances


def _within_limits(record: dict[str, Any], limits: dict[str, int]) -> None:
    for key, value in record.items():
        if isinstance(value, str):
            assert value, f"{key} is an empty string"
            assert value == value.strip() or "\n" in value, f"{key} has stray whitespace"
            if key in limits:
                assert zf.utf16_length(value) <= limits[key], key


@settings(max_examples=property_examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(xero_contacts())
def test_any_schema_contact_maps_and_balances_round_trip(case: tuple[dict[str, Any], dict[str, Decimal]]) -> None:
    contact, balances = case
    result = map_contact(contact)
    account = result["account"]
    assert account["Xero_Contact_ID"] == contact["ContactID"]
    assert account["Account_Name"]
    _within_limits(account, zf.ACCOUNTS_MAX_LENGTH)
    if "Outstanding" in balances:
        assert account["Xero_Outstanding"] == balances["Outstanding"]
        assert isinstance(account["Xero_Outstanding"], Decimal)
    else:
        assert "Xero_Outstanding" not in account
    if "Overdue" in balances:
        assert account["Xero_Overdue"] == balances["Overdue"]
    else:
        assert "Xero_Overdue" not in account
    keys = [person["Xero_Person_Key"] for person in result["contacts"]]
    assert len(keys) == len(set(keys))
    for person in result["contacts"]:
        assert person["Last_Name"]
        assert person["Xero_Person_Key"].startswith(contact["ContactID"] + ":")
        _within_limits(person, zf.CONTACTS_MAX_LENGTH)


# --- invoices ------------------------------------------------------------------------------------

TAX_RATES = [Decimal(r) for r in ("0", "0.05", "0.1", "0.125", "0.15", "0.2", "0.0825")]


@st.composite
def xero_invoices(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Decimal]]:
    amount_types = draw(st.sampled_from(["Exclusive", "Inclusive", "NoTax"]))
    lines: list[dict[str, Any]] = []
    sub_total = total_tax = Decimal("0.00")
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        quantity = draw(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("10000"), places=4))
        unit = draw(st.one_of(
            st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=2),
            st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=4),
        ))
        line: dict[str, Any] = {
            "LineItemID": str(uuid.UUID(int=index + 1)),
            "Description": draw(st.text(min_size=1, max_size=80)),
            "Quantity": as_json_number(draw, quantity),
            "UnitAmount": as_json_number(draw, unit),
            "AccountCode": "200",
            "Tracking": [],
        }
        gross = quantity * unit
        discount_kind = draw(st.sampled_from(["none", "rate", "amount"]))
        if discount_kind == "rate":
            rate = draw(st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2))
            line["DiscountRate"] = as_json_number(draw, rate)
            line_amount = round2(gross * (100 - rate) / 100)
        elif discount_kind == "amount":
            discount = draw(st.decimals(min_value=Decimal("0"), max_value=round2(gross), places=2))
            line["DiscountAmount"] = as_json_number(draw, discount)
            line_amount = round2(gross) - discount
        else:
            line_amount = round2(gross)
        tax_rate = Decimal(0) if amount_types == "NoTax" else draw(st.sampled_from(TAX_RATES))
        if amount_types == "Inclusive":
            tax = round2(line_amount * tax_rate / (1 + tax_rate))
            sub_total += line_amount - tax
        else:
            tax = round2(line_amount * tax_rate)
            sub_total += line_amount
        total_tax += tax
        line["TaxAmount"] = as_json_number(draw, tax)
        if draw(st.integers(0, 3)):  # usually present, as Xero sends it; else the mapper computes it
            line["LineAmount"] = as_json_number(draw, line_amount)
        code = draw(st.sampled_from([None, "A-1", "B-2", "C-3"]))
        if code:
            line["ItemCode"] = code
        lines.append(line)
    totals = {"SubTotal": sub_total, "TotalTax": total_tax, "Total": sub_total + total_tax}
    invoice: dict[str, Any] = {
        "Type": "ACCREC",
        "InvoiceID": str(draw(st.uuids())),
        "InvoiceNumber": f"INV-{draw(st.integers(1, 99999)):04d}",
        "Date": "/Date(1551916800000+0000)/",
        "DueDate": "/Date(1552435200000+0000)/",
        "Status": draw(st.sampled_from(["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"])),
        "LineAmountTypes": amount_types,
        "LineItems": lines,
        "CurrencyCode": "NZD",
        "CurrencyRate": 1.0,
    }
    if draw(st.booleans()):  # reported totals are optional; the mapper recomputes them if absent
        invoice.update({name: as_json_number(draw, value) for name, value in totals.items()})
    return invoice, totals


@settings(max_examples=property_examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(xero_invoices())
def test_any_invoice_maps_and_lines_reproduce_xero_totals(case: tuple[dict[str, Any], dict[str, Decimal]]) -> None:
    invoice, totals = case
    product_ids = {"A-1": "p1", "B-2": "p2", "C-3": "p3"}
    record = map_invoice(invoice, product_ids=product_ids, placeholder_product_id="p0")
    items = record["Invoiced_Items"]
    assert len(items) == len(invoice["LineItems"])
    nets = []
    for item in items:
        assert item["List_Price"].as_tuple().exponent >= -4
        assert item["Discount"] >= 0
        assert item["Discount"].as_tuple().exponent == -2 and item["Tax"].as_tuple().exponent == -2
        nets.append(round2(item["Quantity"] * item["List_Price"]) - item["Discount"])
    sub_total = sum(nets, Decimal("0.00"))
    total_tax = sum((item["Tax"] for item in items), Decimal("0.00"))
    assert sub_total == totals["SubTotal"]
    assert total_tax == totals["TotalTax"]
    assert sub_total + total_tax == totals["Total"]
    assert "Adjustment" not in record
    assert expected_totals(invoice) == totals
    products = invoice_items(invoice)
    codes = [product["Xero_Item_Code"] for product in products]
    assert len(codes) == len(set(codes))
    assert set(codes) == {line["ItemCode"] for line in invoice["LineItems"] if "ItemCode" in line}
