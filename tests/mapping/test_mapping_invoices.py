"""Unit tests for map_invoice, invoice_items and expected_totals."""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.errors import DataError
from connector.mapping import expected_totals, invoice_items, map_invoice

FIXTURES = Path(__file__).parent / "fixtures"
PLACEHOLDER = "900000000000999"
PRODUCT_IDS = {"LAMP-01": "900000000000101", "ROPE-10": "900000000000110"}


def load(name: str, *, decimals: bool = False) -> dict[str, Any]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text, parse_float=Decimal) if decimals else json.loads(text)


def mapped(invoice: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return map_invoice(invoice, product_ids=PRODUCT_IDS, placeholder_product_id=PLACEHOLDER, **kwargs)


def zoho_totals(record: dict[str, Any]) -> dict[str, Decimal]:
    """Totals under our documented Zoho line model: net = round2(Quantity*List_Price) - Discount."""
    cent = Decimal("0.01")
    nets = [
        (item["Quantity"] * item["List_Price"]).quantize(cent, rounding=ROUND_HALF_UP) - item["Discount"]
        for item in record["Invoiced_Items"]
    ]
    sub_total = sum(nets, Decimal("0.00"))
    tax = sum((item["Tax"] for item in record["Invoiced_Items"]), Decimal("0.00"))
    return {"SubTotal": sub_total, "TotalTax": tax, "Total": sub_total + tax + record.get("Adjustment", 0)}


def test_paid_exclusive_invoice_shape() -> None:
    record = mapped(load("invoice_paid_exclusive.json"))
    assert record == {
        "Subject": "INV-0107",
        "Xero_Invoice_ID": "b1c2d3e4-5f60-4a7b-8c9d-0e1f2a3b4c5d",
        "Invoice_Date": "2019-03-07",
        "Due_Date": "2019-03-13",
        "Status": "Approved",
        "Currency": "NZD",
        "Exchange_Rate": Decimal("1.0"),
        "Xero_Amount_Paid": Decimal("230.00"),
        "Xero_Amount_Due": Decimal("0.00"),
        "Xero_Url": "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=b1c2d3e4-5f60-4a7b-8c9d-0e1f2a3b4c5d",
        "Invoiced_Items": [
            {
                "Product_Name": {"id": "900000000000101"},
                "Quantity": Decimal("2.0"),
                "List_Price": Decimal("50.0000"),
                "Discount": Decimal("0.00"),
                "Tax": Decimal("15.00"),
                "Description": "Brass harbour lamp",
            },
            {
                "Product_Name": {"id": PLACEHOLDER},  # no ItemCode
                "Quantity": Decimal("1.0"),
                "List_Price": Decimal("100.0000"),
                "Discount": Decimal("0.00"),
                "Tax": Decimal("15.00"),
                "Description": "Delivery",
            },
        ],
    }
    assert zoho_totals(record) == expected_totals(load("invoice_paid_exclusive.json"))


def test_money_is_decimal_whatever_the_json_parser() -> None:
    from_floats = mapped(load("invoice_paid_exclusive.json"))
    from_decimals = mapped(load("invoice_paid_exclusive.json", decimals=True))
    assert from_floats == from_decimals  # Decimal equality is by value
    for item in from_decimals["Invoiced_Items"]:
        assert all(isinstance(item[key], Decimal) for key in ("Quantity", "List_Price", "Discount", "Tax"))


def test_inclusive_discounted_invoice_lines_are_tax_exclusive_and_reproduce_totals() -> None:
    invoice = load("invoice_inclusive_discounted.json")
    record = mapped(invoice)
    first, rope, spare = record["Invoiced_Items"]
    # The OpenAPI example line: 20.00 incl. 1.74 tax -> 18.26 net, no discount.
    assert (first["List_Price"], first["Discount"], first["Tax"]) == (Decimal("18.2600"), 0, Decimal("1.74"))
    # 3 x 33.3333 incl. tax, 25% off -> LineAmount 75.00, tax 9.78, net 65.22.
    assert rope["Product_Name"] == {"id": "900000000000110"}
    assert rope["List_Price"] == Decimal("28.9867")
    assert rope["Discount"] == Decimal("21.74")
    assert (Decimal(3) * rope["List_Price"]).quantize(Decimal("0.01")) - rope["Discount"] == Decimal("65.22")
    assert spare["Discount"] >= 0
    assert zoho_totals(record) == expected_totals(invoice) == {
        "SubTotal": Decimal("83.63"), "TotalTax": Decimal("11.54"), "Total": Decimal("95.17"),
    }
    assert "Adjustment" not in record
    assert record["Status"] == "Approved"
    assert record["Exchange_Rate"] == Decimal("0.612345")
    assert record["Invoice_Date"] == "2019-02-26"


def test_discount_amount_line() -> None:
    invoice = {
        "Type": "ACCREC", "InvoiceID": "i-1", "LineAmountTypes": "Exclusive",
        "LineItems": [{"Description": "Consulting", "Quantity": 2.5, "UnitAmount": 80, "DiscountAmount": 15,
                       "TaxAmount": 27.75, "LineAmount": 185.00}],
        "SubTotal": 185.00, "TotalTax": 27.75, "Total": 212.75,
    }
    item = mapped(invoice)["Invoiced_Items"][0]
    assert (item["List_Price"], item["Discount"]) == (Decimal("80.0000"), Decimal("15.00"))


def test_missing_line_amount_is_computed_with_xero_arithmetic() -> None:
    invoice = {
        "Type": "ACCREC", "InvoiceID": "i-2",
        "LineItems": [{"Description": "x", "Quantity": "3", "UnitAmount": "9.99", "DiscountRate": "10"}],
    }
    assert expected_totals(invoice) == {
        "SubTotal": Decimal("26.97"), "TotalTax": Decimal("0.00"), "Total": Decimal("26.97"),
    }
    record = mapped(invoice)
    assert zoho_totals(record) == expected_totals(invoice)
    assert "Status" not in record and "Due_Date" not in record


def test_adjustment_carries_a_total_that_lines_do_not_explain() -> None:
    invoice = load("invoice_paid_exclusive.json")
    invoice["Total"] = 230.01  # e.g. invoice-level tax rounding in Xero
    record = mapped(invoice)
    assert record["Adjustment"] == Decimal("0.01")
    assert zoho_totals(record)["Total"] == Decimal("230.01")


def test_description_only_line_uses_placeholder_and_zero_money() -> None:
    invoice = {"Type": "ACCREC", "InvoiceID": "i-3", "InvoiceNumber": "", "LineItems": [{"Description": "Note"}]}
    record = mapped(invoice)
    assert record["Subject"] == "i-3"  # no InvoiceNumber: the id
    assert record["Invoiced_Items"] == [{
        "Product_Name": {"id": PLACEHOLDER}, "Quantity": Decimal(1), "List_Price": Decimal("0.0000"),
        "Discount": Decimal("0.00"), "Tax": Decimal("0.00"), "Description": "Note",
    }]


def test_status_map_default_and_override() -> None:
    base = {"Type": "ACCREC", "InvoiceID": "i-4", "LineItems": [{"Description": "x"}]}
    expected = {"DRAFT": "Created", "SUBMITTED": "Created", "AUTHORISED": "Approved", "PAID": "Approved",
                "VOIDED": "Cancelled", "DELETED": "Cancelled"}
    for xero, zoho in expected.items():
        assert mapped({**base, "Status": xero})["Status"] == zoho
    assert mapped({**base, "Status": "PAID"}, status_map={"PAID": "Paid"})["Status"] == "Paid"
    with pytest.raises(DataError) as caught:
        mapped({**base, "Status": "PAID"}, status_map={"DRAFT": "Created"})
    assert caught.value.field == "Status"


def test_bills_only_when_allowed() -> None:
    bill = {"Type": "ACCPAY", "InvoiceID": "b-1", "LineItems": [{"Description": "x"}]}
    with pytest.raises(DataError) as caught:
        mapped(bill)
    assert caught.value.field == "Type"
    record = mapped(bill, allow_bills=True)
    assert record["Xero_Url"].endswith("/AccountsPayable/Edit.aspx?InvoiceID=b-1")
    with pytest.raises(DataError):
        mapped({**bill, "Type": "ACCRECCREDIT"}, allow_bills=True)


def test_subject_truncated_to_zoho_limit() -> None:
    invoice = {"Type": "ACCREC", "InvoiceID": "i-5", "InvoiceNumber": "N" * 255, "LineItems": [{"Description": "x"}]}
    assert mapped(invoice)["Subject"] == "N" * 50


def test_invoice_items_deduplicated_first_line_wins() -> None:
    products = invoice_items(load("invoice_inclusive_discounted.json"))
    assert products == [{
        "Product_Name": "Mooring rope 10m",
        "Product_Code": "ROPE-10",
        "Xero_Item_Code": "ROPE-10",
        "Unit_Price": Decimal("28.9867"),
    }]
    lamp = invoice_items(load("invoice_paid_exclusive.json"))
    assert lamp == [{"Product_Name": "LAMP-01", "Product_Code": "LAMP-01", "Xero_Item_Code": "LAMP-01",
                     "Unit_Price": Decimal("50.0000")}]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda i: i.pop("Type"), "Type"),
        (lambda i: i.pop("InvoiceID"), "InvoiceID"),
        (lambda i: i.update(LineItems=[]), "LineItems"),
        (lambda i: i.pop("LineItems"), "LineItems"),
        (lambda i: i.update(LineAmountTypes="Gross"), "LineAmountTypes"),
        (lambda i: i["LineItems"][0].update(ItemCode="UNKNOWN"), "LineItems[0].ItemCode"),
        (lambda i: i["LineItems"][1].update(UnitAmount="ten"), "LineItems[1].UnitAmount"),
        (lambda i: i["LineItems"][0].update(Quantity=0), "LineItems[0].Quantity"),
        (lambda i: i["LineItems"][0].update(Quantity="1E+999999"), "LineItems[0]"),
        (lambda i: i.update(Date="March"), "Date"),
        (lambda i: i.update(AmountDue="lots"), "AmountDue"),
        (lambda i: i.update(Status="PENDING"), "Status"),
    ],
)
def test_unmappable_invoices_raise_data_error_naming_the_field(mutate: Any, field: str) -> None:
    invoice = copy.deepcopy(load("invoice_paid_exclusive.json"))
    mutate(invoice)
    with pytest.raises(DataError) as caught:
        mapped(invoice)
    assert caught.value.field == field


def test_missing_placeholder_is_refused() -> None:
    with pytest.raises(DataError):
        map_invoice(load("invoice_paid_exclusive.json"), product_ids=PRODUCT_IDS, placeholder_product_id="")


def test_expected_totals_prefers_reported_values() -> None:
    invoice = load("invoice_paid_exclusive.json")
    assert expected_totals(invoice) == {"SubTotal": Decimal("200.00"), "TotalTax": Decimal("30.00"),
                                        "Total": Decimal("230.00")}


def test_negative_credit_line_still_reproduces_totals() -> None:
    invoice = {
        "Type": "ACCREC", "InvoiceID": "i-6", "LineAmountTypes": "Inclusive",
        "LineItems": [
            {"Description": "Goods", "Quantity": 4, "UnitAmount": "12.3456", "TaxAmount": "6.44", "LineAmount": "49.38"},
            {"Description": "Goodwill credit", "Quantity": 1, "UnitAmount": -5, "TaxAmount": "-0.65",
             "LineAmount": -5, "DiscountRate": 10},
        ],
    }
    record = mapped(invoice)
    assert zoho_totals(record) == expected_totals(invoice) == {
        "SubTotal": Decimal("38.59"), "TotalTax": Decimal("5.79"), "Total": Decimal("44.38"),
    }
