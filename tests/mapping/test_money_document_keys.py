"""MONEY_DOCUMENT_KEYS: every top-level key money_figures reads, so a store may hand it documents cut down
to those keys (SnapshotStore.customers_documents(money_keys_only=True)) and the figures stay the same."""

from __future__ import annotations

from datetime import date

from connector.mapping.money import MONEY_DOCUMENT_KEYS, money_figures


class Recording(dict):
    """A document that notes every top-level key read from it."""

    read: set[str] = set()

    def get(self, key, default=None):
        Recording.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        Recording.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        Recording.read.add(key)
        return super().__contains__(key)


def _documents() -> dict[str, list[dict]]:
    """Documents that take every branch: foreign currency, embedded and listed payments, credit of each kind."""
    extra = {"Contact": {"ContactID": "c-1", "Name": "Acme", "Addresses": []}, "Reference": "r",
             "SubTotal": "1.00", "LineAmountTypes": "Exclusive", "HasAttachments": False}
    embedded = {"PaymentID": "pay-embedded", "Date": "2026-03-02", "Amount": "5.00", "CurrencyRate": "0.5"}
    return {
        "invoices": [
            {**extra, "InvoiceID": "inv-1", "Type": "ACCREC", "Status": "AUTHORISED", "Total": "100.00",
             "AmountDue": "60.00", "Date": "2026-02-01", "DueDate": "2026-03-01", "CurrencyCode": "USD",
             "CurrencyRate": "0.5", "Payments": [embedded, {"PaymentID": "pay-1", "Date": "2026-03-03",
                                                            "Amount": "40.00"}]},
            {**extra, "InvoiceID": "inv-2", "Type": "ACCREC", "Status": "PAID", "Total": "10.00", "AmountDue": "0.00",
             "Date": "2026-03-04", "CurrencyCode": "NZD", "Payments": []},
        ],
        "credit_notes": [{**extra, "CreditNoteID": "cn-1", "Type": "ACCRECCREDIT", "Status": "AUTHORISED",
                          "RemainingCredit": "7.00", "CurrencyCode": "NZD", "CurrencyRate": "1"}],
        "payments": [{**extra, "PaymentID": "pay-1", "Status": "AUTHORISED", "PaymentType": "ACCRECPAYMENT",
                      "Date": "2026-03-03", "Amount": "40.00", "CurrencyRate": "0.5",
                      "Invoice": {"InvoiceID": "inv-1", "Type": "ACCREC", "CurrencyCode": "USD"}},
                     {**extra, "PaymentID": "pay-2", "Status": "DELETED", "Date": "2026-03-05", "Amount": "1.00",
                      "Invoice": {"InvoiceID": "inv-2", "Type": "ACCREC"}}],
        "overpayments": [{**extra, "OverpaymentID": "op-1", "Type": "RECEIVE-OVERPAYMENT", "Status": "AUTHORISED",
                          "RemainingCredit": "3.00", "Total": "3.00", "Date": "2026-03-06", "CurrencyCode": "NZD"}],
        "prepayments": [{**extra, "PrepaymentID": "pp-1", "Type": "RECEIVE-PREPAYMENT", "Status": "PAID",
                         "RemainingCredit": "0.00", "Total": "2.00", "Date": "2026-03-06", "CurrencyCode": "NZD"}],
    }


def _figures(documents: dict[str, list[dict]]) -> dict:
    return money_figures(**documents, base_currency="NZD", today=date(2026, 3, 10))


def test_money_figures_reads_no_top_level_key_outside_money_document_keys():
    Recording.read = set()
    _figures({kind: [Recording(d) for d in docs] for kind, docs in _documents().items()})
    assert Recording.read, "the recording saw no read"
    assert Recording.read <= set(MONEY_DOCUMENT_KEYS), Recording.read - set(MONEY_DOCUMENT_KEYS)


def test_documents_cut_to_the_money_keys_give_the_same_figures():
    whole = _documents()
    cut = {kind: [{k: v for k, v in d.items() if k in MONEY_DOCUMENT_KEYS} for d in docs]
           for kind, docs in whole.items()}
    assert _figures(cut) == _figures(whole)
    assert _figures(whole)["last_payment_date"] == date(2026, 3, 6)  # the cases are live, not empty
