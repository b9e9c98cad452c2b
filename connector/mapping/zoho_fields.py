"""Zoho CRM field API names we write, and the text lengths we keep under.

Custom fields (created by our setup step in each Zoho org; single-line text unless noted). They let
the pipeline upsert by Xero identity (``X-EXTERNAL`` / ``duplicate_check_fields``) instead of by
Zoho's system duplicate fields (Account_Name, Email, Product_Name, Subject), which Xero data does not
keep unique.

Length limits. Zoho's v8 OpenAPI (fields.json) only describes the ``length`` attribute of a field; it
carries no values. The numbers below come from Zoho's help pages "Standard Fields in Leads / Accounts /
Products / Invoices" (help.zoho.com, standard-modules-fields), which give the standard layout's
defaults. They are UNVERIFIED for any particular org (admins can change some of them); the
authoritative source is ``length`` in ``GET /crm/v8/settings/fields?module=...``. Where the help pages
have no number, or an implausible one, the entry says so.

How Zoho counts characters is UNVERIFIED; Zoho is a Java service, so we count UTF-16 code units,
which is never more lenient than counting code points (see ``truncate_text``).
"""

from __future__ import annotations

from typing import Final

# --- custom fields -------------------------------------------------------------------------------
ACCOUNT_XERO_ID: Final = "Xero_Contact_ID"
ACCOUNT_TAX_NUMBER: Final = "Xero_Tax_Number"
ACCOUNT_OUTSTANDING: Final = "Xero_Outstanding"  # currency field
ACCOUNT_OVERDUE: Final = "Xero_Overdue"  # currency field
ACCOUNT_TOTAL_INVOICED: Final = "Xero_Total_Invoiced"  # currency field
ACCOUNT_CREDIT_AVAILABLE: Final = "Xero_Credit_Available"  # currency field
ACCOUNT_LAST_INVOICE_DATE: Final = "Xero_Last_Invoice_Date"  # date field
ACCOUNT_LAST_PAYMENT_DATE: Final = "Xero_Last_Payment_Date"  # date field
ACCOUNT_LAST_PAYMENT_AMOUNT: Final = "Xero_Last_Payment_Amount"  # currency field
ACCOUNT_PAYMENT_STATUS: Final = "Xero_Payment_Status"  # text: Paid up | Outstanding | Overdue | No invoices
# The Account's money figures (connector/mapping/money.py keys) and the Zoho field each goes to by
# default; mapping.yaml ``account_fields`` renames them for orgs that have their own.
ACCOUNT_MONEY_FIELDS: Final[dict[str, str]] = {
    "outstanding": ACCOUNT_OUTSTANDING,
    "overdue": ACCOUNT_OVERDUE,
    "total_invoiced": ACCOUNT_TOTAL_INVOICED,
    "credit_available": ACCOUNT_CREDIT_AVAILABLE,
    "last_invoice_date": ACCOUNT_LAST_INVOICE_DATE,
    "last_payment_date": ACCOUNT_LAST_PAYMENT_DATE,
    "last_payment_amount": ACCOUNT_LAST_PAYMENT_AMOUNT,
    "payment_status": ACCOUNT_PAYMENT_STATUS,
}
# Zoho data_type of each figure's field (the fields API's names).
ACCOUNT_MONEY_TYPES: Final[dict[str, str]] = {
    "outstanding": "currency", "overdue": "currency", "total_invoiced": "currency",
    "credit_available": "currency", "last_invoice_date": "date", "last_payment_date": "date",
    "last_payment_amount": "currency", "payment_status": "text",
}
ACCOUNT_XERO_STATUS: Final = "Xero_Status"  # ACTIVE | ARCHIVED | GDPRREQUEST, as Xero spells them
CONTACT_PERSON_KEY: Final = "Xero_Person_Key"
INVOICE_XERO_ID: Final = "Xero_Invoice_ID"
INVOICE_AMOUNT_PAID: Final = "Xero_Amount_Paid"  # currency field
INVOICE_AMOUNT_DUE: Final = "Xero_Amount_Due"  # currency field
PRODUCT_ITEM_CODE: Final = "Xero_Item_Code"
INVOICE_DEAL: Final = "Deal"  # lookup to Deals (Zoho's Invoices have none of their own); mapping.yaml deals.invoice_field
XERO_URL: Final = "Xero_Url"  # URL field, on Accounts and Invoices

# Zoho's maximum for a custom single-line text field (UNVERIFIED here; commonly 255).
CUSTOM_TEXT_MAX: Final = 255

# --- standard field lengths ----------------------------------------------------------------------
_ADDRESS_LINE = 30  # City / State / Code / Country: "Alphanumeric(30)" in the help pages
_STREET = 250  # "Alphanumeric(250)"

ACCOUNTS_MAX_LENGTH: Final[dict[str, int]] = {
    "Account_Name": 100,
    "Account_Number": 40,  # help page: "Up to 40 characters" (and lists the type as Numeric: see contacts.py)
    "Phone": 30,
    "Fax": 30,
    # Help page says 30 for Accounts but 120 for the same URL type on Leads; 30 looks like a doc slip.
    # URLs are never truncated (a cut URL points elsewhere): too long means omitted.
    "Website": 120,
    "Billing_Street": _STREET,
    "Billing_City": _ADDRESS_LINE,
    "Billing_State": _ADDRESS_LINE,
    "Billing_Code": _ADDRESS_LINE,
    "Billing_Country": _ADDRESS_LINE,
    "Shipping_Street": _STREET,
    "Shipping_City": _ADDRESS_LINE,
    "Shipping_State": _ADDRESS_LINE,
    "Shipping_Code": _ADDRESS_LINE,
    "Shipping_Country": _ADDRESS_LINE,
    ACCOUNT_XERO_ID: CUSTOM_TEXT_MAX,
    ACCOUNT_TAX_NUMBER: CUSTOM_TEXT_MAX,
    ACCOUNT_XERO_STATUS: CUSTOM_TEXT_MAX,
    XERO_URL: CUSTOM_TEXT_MAX,
}

CONTACTS_MAX_LENGTH: Final[dict[str, int]] = {
    # Contacts values are UNVERIFIED: the help pages give them for Leads (same standard fields).
    "First_Name": 40,
    "Last_Name": 80,
    "Email": 100,  # emails are never truncated: too long means omitted
    "Phone": 30,
    "Mobile": 30,
    "Mailing_Street": _STREET,
    "Mailing_City": _ADDRESS_LINE,
    "Mailing_State": _ADDRESS_LINE,
    "Mailing_Zip": _ADDRESS_LINE,
    "Mailing_Country": _ADDRESS_LINE,
    CONTACT_PERSON_KEY: CUSTOM_TEXT_MAX,
}

PRODUCTS_MAX_LENGTH: Final[dict[str, int]] = {
    "Product_Name": 50,  # help page "Alphanumeric(50)" (Xero item names are also <= 50)
    "Product_Code": 40,  # help page "Alphanumeric(40)" (Xero item codes are <= 30)
    PRODUCT_ITEM_CODE: CUSTOM_TEXT_MAX,
}

INVOICES_MAX_LENGTH: Final[dict[str, int]] = {
    "Subject": 50,  # help page "Alphanumeric(50)"; Xero InvoiceNumber allows 255
    "Currency": 3,
    INVOICE_XERO_ID: CUSTOM_TEXT_MAX,
    XERO_URL: CUSTOM_TEXT_MAX,
}

# Invoiced_Items line "Description": no number found in any source; 2000 is a guess (UNVERIFIED).
INVOICE_LINE_DESCRIPTION_MAX: Final = 2000


# --- text helpers (shared by the mappers) --------------------------------------------------------


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: characters outside the BMP (emoji, rare CJK) count twice."""
    if text.isascii():
        return len(text)
    # Counted in C: two bytes a unit; surrogatepass counts a lone surrogate (JSON may carry one) as one.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-16 code units, never inside a character.

    Slicing a Python str never splits a code point, so no multi-byte UTF-8 sequence or surrogate pair
    is broken; counting UTF-16 units keeps us under the limit whether Zoho counts code points or Java
    chars. Trailing whitespace left by the cut is dropped.
    """
    if utf16_length(text) <= limit:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index].rstrip()
    return text  # unreachable: the length check above guarantees an early return
