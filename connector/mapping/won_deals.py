"""A won Zoho deal as the one Xero sales invoice it becomes. Pure: dicts in, dicts out, no I/O.

Which deals: a deal whose ``Stage`` is its pipeline's won stage (mapping.yaml ``won_deals``: one ``stage``
for every pipeline, or ``pipelines`` naming the pipelines opted in and each one's won stage). Zoho Deals
carry ``Stage`` and, in orgs with pipelines, ``Pipeline`` (help page "Standard Fields in Deals",
https://help.zoho.com/portal/en/kb/crm/sales-force-automation/deal-management/articles/standard-fields-deals;
the API shape of ``Pipeline``, a picklist value or ``{"name", "id"}``, is UNVERIFIED: both are read).

The invoice (Xero Invoices, https://developer.xero.com/documentation/api/accounting/invoices): ACCREC, for
the deal's account's Xero contact, status DRAFT unless configured (a new invoice may be DRAFT, SUBMITTED or
AUTHORISED), the Zoho deal id as its ``Reference`` (so the invoice links back to the deal by the
``reference`` rule of mapping/deals.py when it syncs into Zoho), the deal's currency where set. Lines, from
the first source that has some:

- the deal's sales order, else its quote (Zoho v8: Sales_Orders carry ``Deal_Name`` and ``Ordered_Items``,
  Quotes ``Deal_Name`` and ``Quoted_Items``; each line ``Product_Name`` {id, name}, ``Quantity``,
  ``List_Price``, ``Discount`` (an amount), ``Description``: https://www.zoho.com/crm/developer/docs/api/v8/get-records.html
  and the modules' field lists in GET /settings/fields);
- the products related to the deal (GET /Deals/{id}/Products, https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html):
  one line each at its ``Unit_Price``, quantity 1 (a quantity on the deal-product relation: UNVERIFIED);
- else one line for the deal's ``Amount``.
A line's Xero item is its product's ``Xero_Item_Code`` (the item the product was synced from), else the
configured ``item_code`` on the Amount line; a line without an item gets the configured ``account_code``.
``tax_type`` applies to every line when set (else Xero's default for the account or item). No Date or
DueDate is sent: Xero dates the invoice today and takes the due date from the contact's or organisation's
payment terms (UNVERIFIED: whether Xero refuses a SUBMITTED or AUTHORISED invoice without a DueDate where
no terms are set; such a refusal is reported per deal like any other).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import DataError
from connector.mapping.hashing import canonical_json

DEFAULT_WON_STAGE = "Closed Won"
# What Xero lets a new invoice be (https://developer.xero.com/documentation/api/accounting/invoices, Status codes).
CREATABLE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
# Where a won deal's lines come from, in order of preference.
SALES_ORDER, QUOTE, PRODUCTS, AMOUNT = "sales_order", "quote", "products", "amount"
LINE_SOURCES = (SALES_ORDER, QUOTE, PRODUCTS, AMOUNT)
LINE_ITEMS_FIELD = {SALES_ORDER: "Ordered_Items", QUOTE: "Quoted_Items"}
# Xero's Idempotency-Key is at most 128 characters (OAS components.parameters.idempotencyKey;
# https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/).
MAX_IDEMPOTENCY_KEY = 128
INTENT = "won-deal-invoice"


def pipeline_of(deal: Mapping[str, Any]) -> str | None:
    value = deal.get("Pipeline")
    if isinstance(value, Mapping):
        value = value.get("name") or value.get("display_value")
    return str(value) if value else None


def won_stage(deal: Mapping[str, Any], *, stage: str, pipelines: Mapping[str, str]) -> str | None:
    """The stage that means won for this deal's pipeline; None when its pipeline is not opted in."""
    if not pipelines:
        return stage
    return pipelines.get(pipeline_of(deal) or "")


def is_won(deal: Mapping[str, Any], *, stage: str, pipelines: Mapping[str, str]) -> bool:
    wanted = won_stage(deal, stage=stage, pipelines=pipelines)
    return wanted is not None and deal.get("Stage") == wanted


def idempotency_key(connection_id: int, deal_id: str, invoice: Mapping[str, Any]) -> str:
    """One key per deal and invoice body: a repeat in Xero's window gets the first result instead of a second
    invoice. The body's hash is in it so that, once a person fixed what Xero refused (a tax type, say), the
    corrected invoice is not answered with the refusal Xero kept for the key. Always <= 128 characters."""
    body = hashlib.sha256(canonical_json(invoice).encode()).hexdigest()[:16]
    key = f"{INTENT}:{connection_id}:{deal_id}:{body}"
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return f"{INTENT}:{hashlib.sha256(key.encode()).hexdigest()}"


def account_id_of(deal: Mapping[str, Any]) -> str | None:
    account = deal.get("Account_Name")
    return str(account.get("id")) if isinstance(account, Mapping) and account.get("id") else None


def won_deal_invoice(
    deal: Mapping[str, Any],
    *,
    contact_id: str,
    source: str,
    lines: Sequence[Mapping[str, Any]] = (),
    products: Mapping[str, Mapping[str, Any]] | None = None,
    status: str = "DRAFT",
    item_code: str | None = None,
    account_code: str | None = None,
    tax_type: str | None = None,
) -> dict[str, Any]:
    """The Xero invoice for a won ``deal`` (a Zoho Deal record) billed to ``contact_id``.

    ``source``: one of LINE_SOURCES; ``lines``: the sales order's or quote's line items, or the related
    products (records with ``Unit_Price``); ``products``: Zoho products by id (``Xero_Item_Code``,
    ``Product_Name``). Raises DataError when there is nothing to bill (no lines and no Amount).
    """
    if status not in CREATABLE_STATUSES:
        raise DataError(f"won_deals.status {status!r} is not one of {', '.join(CREATABLE_STATUSES)}",
                        field="won_deals.status")
    deal_id = str(deal["id"])
    products = products or {}
    if source in (SALES_ORDER, QUOTE):
        xero_lines = [_document_line(line, products, account_code, tax_type) for line in lines]
    elif source == PRODUCTS:
        xero_lines = [_product_line(product, account_code, tax_type) for product in lines]
    else:
        amount = _money(deal.get("Amount"), f"Deal[{deal_id}].Amount")
        if amount is None or amount <= 0:
            raise DataError(f"deal {deal_id} has no products, quote or sales order and no Amount; set its Amount "
                            "in Zoho (or add products), then move it to its won stage again", field="Amount")
        xero_lines = [_line(description=str(deal.get("Deal_Name") or f"Deal {deal_id}"), quantity=Decimal(1),
                            unit=amount, item_code=item_code, account_code=None if item_code else account_code,
                            tax_type=tax_type)]
    invoice: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Status": status,
        "Reference": deal_id,
        "LineAmountTypes": "Exclusive",
        "LineItems": xero_lines,
    }
    currency = deal.get("Currency")
    if isinstance(currency, str) and len(currency) == 3:
        invoice["CurrencyCode"] = currency.upper()
    return invoice


def _document_line(line: Mapping[str, Any], products: Mapping[str, Mapping[str, Any]], account_code: str | None,
                   tax_type: str | None) -> dict[str, Any]:
    product_ref = line.get("Product_Name") or {}
    product_id = str(product_ref.get("id") or "") if isinstance(product_ref, Mapping) else ""
    product = products.get(product_id, {})
    code = product.get("Xero_Item_Code") or None
    name = (product_ref.get("name") if isinstance(product_ref, Mapping) else None) or product.get("Product_Name")
    where = f"line of product {product_id or '?'}"
    discount = _money(line.get("Discount"), f"{where}.Discount") or Decimal(0)
    return _line(description=str(line.get("Description") or name or "Deal line"),
                 quantity=_money(line.get("Quantity"), f"{where}.Quantity") or Decimal(1),
                 unit=_money(line.get("List_Price"), f"{where}.List_Price") or Decimal(0),
                 item_code=code, account_code=None if code else account_code, tax_type=tax_type,
                 discount=discount)


def _product_line(product: Mapping[str, Any], account_code: str | None, tax_type: str | None) -> dict[str, Any]:
    code = product.get("Xero_Item_Code") or None
    return _line(description=str(product.get("Description") or product.get("Product_Name") or "Product"),
                 quantity=Decimal(1), unit=_money(product.get("Unit_Price"), f"Product[{product.get('id')}].Unit_Price")
                 or Decimal(0), item_code=code, account_code=None if code else account_code, tax_type=tax_type)


def _line(*, description: str, quantity: Decimal, unit: Decimal, item_code: str | None, account_code: str | None,
          tax_type: str | None, discount: Decimal = Decimal(0)) -> dict[str, Any]:
    line: dict[str, Any] = {"Description": description, "Quantity": quantity, "UnitAmount": unit}
    if item_code:
        line["ItemCode"] = item_code
    if account_code:
        line["AccountCode"] = account_code
    if tax_type:
        line["TaxType"] = tax_type
    if discount:
        line["DiscountAmount"] = discount  # Xero: ACCREC lines accept an amount off (LineItem.DiscountAmount)
    return line


def _money(value: Any, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise DataError(f"{field} is not a number: {value!r}", field=field) from None


def advice_for(message: str) -> str:
    """What a person does about Xero's refusal of a won deal's invoice: which mapping.yaml key to fix, or what
    to change in Xero. Xero's messages (https://developer.xero.com/documentation/api/accounting/invoices,
    ValidationException; exact wordings beyond the tax type's: UNVERIFIED) are matched loosely."""
    text = message.lower()
    if "taxtype" in text or "tax type" in text or "tax rate" in text:
        return f"fix won_deals.tax_type in mapping.yaml (a tax type of your Xero organisation), {_RETRY}"
    if "item code" in text or "itemcode" in text or "item with code" in text:
        return (f"fix won_deals.item_code in mapping.yaml, or the product's Xero_Item_Code in Zoho (an item of your "
                f"Xero organisation), {_RETRY}")
    if "archived" in text:
        return f"the deal's account is an archived contact in Xero: restore it in Xero, {_RETRY}"
    # "Account must be valid." is what Xero answered for an unknown AccountCode, as reported on Xero's own SDK
    # tracker: https://github.com/XeroAPI/Xero-Java/issues/353 (UNVERIFIED against a real org).
    if "account" in text:
        return f"fix won_deals.account_code in mapping.yaml (a revenue account of your Xero organisation), {_RETRY}"
    if "period" in text or "lock date" in text or "locked" in text:
        return f"the invoice date is in a locked period in Xero: move the lock date in Xero, {_RETRY}"
    if "currency" in text:
        return f"enable the deal's currency in Xero (or change the deal's currency in Zoho), {_RETRY}"
    return f"fix what Xero says, {_RETRY}"


_RETRY = "then save the deal in Zoho again (any edit) to retry"
