"""XeroClient against `responses`, with the real token manager, credential store and Redis."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from tests.clients.conftest import TENANT_ID, XERO_API_URL, XERO_TOKEN_URL

from connector.errors import ApiError, NeedsReauth, NotFound, RateLimited, TransientError, ValidationRefused
from connector.ratelimit import Limits
from connector.xero.client import XeroClient, format_modified_since

ACCOUNTING = XERO_API_URL + "/api.xro/2.0"
JSON = "application/json; charset=utf-8"
LIMIT_HEADERS = {"X-DayLimit-Remaining": "4984", "X-MinLimit-Remaining": "59", "X-AppMinLimit-Remaining": "9999",
                 "Xero-Correlation-Id": "0b8d1f3e-0000-4000-8000-00000000c0de"}


def envelope(key: str, items: list, pagination: dict | None = None) -> str:
    # Xero's response envelope (https://developer.xero.com/documentation/api/requests-and-responses).
    body = {"Id": "900c500b-e83c-4ce2-902a-b8ba04751748", "Status": "OK", "ProviderName": "ml-connector",
            "DateTimeUTC": "/Date(1552326816230)/", key: items}
    if pagination:
        body["pagination"] = pagination
    return json.dumps(body)


def contact(n: int) -> dict:
    return {"ContactID": f"00000000-0000-4000-8000-{n:012d}", "Name": f"Customer {n}", "ContactStatus": "ACTIVE",
            "UpdatedDateUTC": "/Date(1466787188930+0000)/"}


def query(call_or_request) -> dict[str, list[str]]:
    request = getattr(call_or_request, "request", call_or_request)
    return parse_qs(urlsplit(request.url).query)


@pytest.fixture
def client(session, xero_tokens):
    return XeroClient(session=session, tokens=xero_tokens, tenant_id=TENANT_ID, api_url=XERO_API_URL)


def test_every_call_sends_bearer_token_tenant_and_json_accept(client, http):
    http.get(ACCOUNTING + "/Contacts/abc", body=envelope("Contacts", [contact(1)]), content_type=JSON, headers=LIMIT_HEADERS)

    assert client.get_record("contacts", "abc")["Name"] == "Customer 1"

    headers = http.calls[0].request.headers
    assert headers["Authorization"] == "Bearer xero-access-1"
    assert headers["xero-tenant-id"] == TENANT_ID
    assert headers["Accept"] == "application/json"


def test_get_connections_sends_no_tenant_header(client, http):
    connections = [{"id": "7cb59f93-0000", "authEventId": "d99ecdfe-0000", "tenantId": TENANT_ID,
                    "tenantType": "ORGANISATION", "tenantName": "Demo Company (NZ)",
                    "createdDateUtc": "2019-12-07T18:46:19.5165400", "updatedDateUtc": "2019-12-07T18:46:19.5187840"}]
    http.get(XERO_API_URL + "/connections", json=connections)

    assert client.get_connections() == connections
    assert "xero-tenant-id" not in http.calls[0].request.headers
    assert http.calls[0].request.headers["Authorization"] == "Bearer xero-access-1"


def test_ids_are_fetched_in_chunks_of_at_most_fifty(client, http):
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(120)]
    by_id = {i: contact(n) for n, i in enumerate(ids)}

    def answer(request):
        wanted = query(request)["IDs"][0].split(",")  # requests sends the commas URL-encoded
        return 200, {"Content-Type": JSON}, envelope("Contacts", [by_id[i] for i in wanted])

    http.add_callback(responses.GET, ACCOUNTING + "/Contacts", callback=answer)

    found = client.get_contacts(ids)

    sizes = [len(query(call)["IDs"][0].split(",")) for call in http.calls]
    assert sizes == [50, 50, 20]
    assert [c["ContactID"] for c in found] == ids
    assert all(query(call)["page"] == ["1"] and query(call)["includeArchived"] == ["true"] for call in http.calls)


def test_no_ids_means_no_call(client, http):
    assert client.get_invoices([]) == []
    assert len(http.calls) == 0


def test_list_reads_the_pagination_block(client, http):
    http.get(ACCOUNTING + "/Invoices", content_type=JSON, body=envelope(
        "Invoices", [{"InvoiceID": "i1"}, {"InvoiceID": "i2"}],
        {"page": 2, "pageSize": 2, "pageCount": 3, "itemCount": 6}))

    page = client.list_records("invoices", page=2, page_size=2, statuses=["AUTHORISED", "PAID"], where='Type=="ACCREC"')

    assert (page.page, page.page_size, page.page_count, page.item_count) == (2, 2, 3, 6)
    assert [i["InvoiceID"] for i in page.items] == ["i1", "i2"]
    assert page.has_more
    params = query(http.calls[0])
    assert params["page"] == ["2"] and params["pageSize"] == ["2"]
    assert params["Statuses"] == ["AUTHORISED,PAID"] and params["where"] == ['Type=="ACCREC"']
    assert params["order"] == ["UpdatedDateUTC ASC"]


@pytest.mark.parametrize(("returned", "more"), [(100, True), (37, False)])
def test_without_pagination_a_short_page_is_the_last(client, http, returned, more):
    http.get(ACCOUNTING + "/Payments", content_type=JSON,
             body=envelope("Payments", [{"PaymentID": str(n)} for n in range(returned)]))

    page = client.list_records("payments")

    assert page.page_count is None and page.has_more is more


def test_if_modified_since_is_iso_utc_without_fraction(client, http):
    http.get(ACCOUNTING + "/Contacts", content_type=JSON, body=envelope("Contacts", []))
    since = datetime(2026, 1, 5, 11, 30, 15, 987654, tzinfo=timezone(timedelta(hours=2)))

    client.list_records("contacts", modified_since=since)

    assert http.calls[0].request.headers["If-Modified-Since"] == "2026-01-05T09:30:15"
    assert format_modified_since(datetime(2026, 1, 5, 9, 30, 15)) == "2026-01-05T09:30:15"


def test_money_is_parsed_as_decimal(client, http):
    body = ('{"Status":"OK","Invoices":[{"InvoiceID":"i1","Total":40.10,"AmountDue":0.30,'
            '"CurrencyRate":1.000000,"LineItems":[{"Quantity":2.0000,"UnitAmount":20.05}]}]}')
    http.get(ACCOUNTING + "/Invoices/i1", body=body, content_type=JSON)

    invoice = client.get_record("invoices", "i1")

    assert invoice["Total"] == Decimal("40.10") and isinstance(invoice["Total"], Decimal)
    assert invoice["AmountDue"] == Decimal("0.30")
    assert invoice["LineItems"][0]["UnitAmount"] * invoice["LineItems"][0]["Quantity"] == Decimal("40.10")


def test_update_contact_posts_one_contact_with_idempotency_key_and_decimal_numbers(client, http):
    http.post(ACCOUNTING + "/Contacts/c-1", content_type=JSON, body=envelope("Contacts", [contact(1)]))

    client.update_contact({"ContactID": "c-1", "Name": "Customer 1", "Discount": Decimal("12.50")},
                          idempotency_key="sync-c-1-v7")

    request = http.calls[0].request
    assert request.headers["Idempotency-Key"] == "sync-c-1-v7"
    assert request.headers["Content-Type"] == "application/json"
    assert b'"Discount":12.50' in request.body
    assert json.loads(request.body) == {"Contacts": [{"ContactID": "c-1", "Name": "Customer 1", "Discount": 12.5}]}


def test_create_contacts_puts_the_batch(client, http):
    http.put(ACCOUNTING + "/Contacts", content_type=JSON, body=envelope("Contacts", [contact(1), contact(2)]))

    created = client.create_contacts([{"Name": "Customer 1"}, {"Name": "Customer 2"}], idempotency_key="k")

    assert [c["Name"] for c in created] == ["Customer 1", "Customer 2"]
    assert http.calls[0].request.headers["Idempotency-Key"] == "k"


def test_credit_notes_by_id_use_a_where_chain(client, http):
    http.get(ACCOUNTING + "/CreditNotes", content_type=JSON, body=envelope("CreditNotes", [{"CreditNoteID": "x"}]))

    client.get_credit_notes([f"id-{n}" for n in range(25)])

    wheres = [query(call)["where"][0] for call in http.calls]
    assert len(wheres) == 2
    assert wheres[1] == " OR ".join(f'CreditNoteID==Guid("id-{n}")' for n in range(20, 25))


VALIDATION_400 = {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                  "Elements": [{"ContactID": "00000000-0000-0000-0000-000000000000", "Name": "Buzz Lightyear",
                                "HasValidationErrors": True, "ValidationErrors": [{"Message": "The contact name Buzz "
                                "Lightyear is already assigned to another contact."}]}]}
FORBIDDEN_403 = {"Type": None, "Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful",
                 "Instance": "6489df60-0000", "Extensions": {}}


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "text"),
    [
        (400, json.dumps(VALIDATION_400), JSON, ValidationRefused, "already assigned to another contact"),
        (400, "Supplied parameter 'Ids' cannot be parsed - must be of type UUID.", "text/plain", ApiError, "cannot be parsed"),
        (403, json.dumps(FORBIDDEN_403), JSON, NeedsReauth, f"tenant {TENANT_ID} is no longer connected"),
        (404, "The resource you're looking for cannot be found", "text/html", NotFound, "cannot be found"),
        (500, '{"Title":"An error occurred"}', JSON, TransientError, "500"),
        (503, "The Xero API is currently offline for maintenance", "text/plain", TransientError, "offline"),
        (412, "", "text/plain", ApiError, "412"),
    ],
)
def test_error_table(client, http, status, body, content_type, error, text):
    http.get(ACCOUNTING + "/Contacts/c-1", status=status, body=body, content_type=content_type)

    with pytest.raises(error, match=text) as raised:
        client.get_record("contacts", "c-1")

    assert "xero-access-1" not in str(raised.value)
    assert len(http.calls) == 1  # nothing but a 401 is retried here


def test_429_raises_rate_limited_and_penalises_the_tenant_in_the_governor(session, xero_tokens, governor, http):
    client = XeroClient(session=session, tokens=xero_tokens, tenant_id=TENANT_ID, api_url=XERO_API_URL,
                        governor=governor)
    http.get(ACCOUNTING + "/Contacts/c-1", status=429, body="", content_type="text/plain",
             headers={"Retry-After": "42", "X-Rate-Limit-Problem": "minute"})

    with pytest.raises(RateLimited) as raised:
        client.get_record("contacts", "c-1")
    assert (raised.value.retry_after, raised.value.problem) == (42.0, "minute")

    with pytest.raises(RateLimited) as again:  # the governor now refuses before any HTTP call
        client.get_record("contacts", "c-1")
    assert again.value.problem == "penalty" and 0 < again.value.retry_after <= 42
    assert len(http.calls) == 1


def test_governor_learns_remaining_calls_from_response_headers(session, xero_tokens, governor, http, clock):
    client = XeroClient(session=session, tokens=xero_tokens, tenant_id=TENANT_ID, api_url=XERO_API_URL,
                        governor=governor, limits=Limits())
    http.get(ACCOUNTING + "/Contacts/c-1", content_type=JSON, body=envelope("Contacts", [contact(1)]),
             headers={**LIMIT_HEADERS, "X-MinLimit-Remaining": "0"})

    client.get_record("contacts", "c-1")
    with pytest.raises(RateLimited) as raised:
        client.get_record("contacts", "c-1")

    assert raised.value.problem == "minute"
    assert governor.usage(TENANT_ID)["in_flight"] == 0  # the permit was released
    clock.advance(61)
    assert client.get_record("contacts", "c-1")["Name"] == "Customer 1"


def test_401_refreshes_once_then_retries_with_the_new_token(client, http, credentials, connection_id):
    unauthorized = {"Type": None, "Title": "Unauthorized", "Status": 401,
                    "Detail": "TokenExpired: token expired at 04/09/2023 05:16:59", "Instance": "x", "Extensions": {}}
    http.get(ACCOUNTING + "/Contacts/c-1", status=401, json=unauthorized)
    http.get(ACCOUNTING + "/Contacts/c-1", content_type=JSON, body=envelope("Contacts", [contact(1)]))
    http.post(XERO_TOKEN_URL, json={"access_token": "xero-access-2", "expires_in": 1800, "token_type": "Bearer",
                                    "refresh_token": "xero-refresh-2", "scope": "offline_access accounting.contacts"})

    assert client.get_record("contacts", "c-1")["Name"] == "Customer 1"

    api_calls = [c for c in http.calls if c.request.url.startswith(ACCOUNTING)]
    assert [c.request.headers["Authorization"] for c in api_calls] == ["Bearer xero-access-1", "Bearer xero-access-2"]
    assert credentials.load(connection_id, "xero").tokens.refresh_token.reveal() == "xero-refresh-2"


def test_a_second_401_means_reconnect(client, http):
    http.get(ACCOUNTING + "/Contacts/c-1", status=401, json={"Title": "Unauthorized", "Status": 401})
    http.post(XERO_TOKEN_URL, json={"access_token": "xero-access-2", "expires_in": 1800, "token_type": "Bearer",
                                    "refresh_token": "xero-refresh-2", "scope": "offline_access"})

    with pytest.raises(NeedsReauth) as raised:
        client.get_record("contacts", "c-1")

    assert len([c for c in http.calls if c.request.url.startswith(ACCOUNTING)]) == 2
    assert "xero-access" not in str(raised.value)


def test_timeouts_are_retried_briefly_then_transient(client, http):
    http.get(ACCOUNTING + "/Contacts/c-1", body=requests.ConnectTimeout("connect timed out"))

    with pytest.raises(TransientError, match="ConnectTimeout"):
        client.get_record("contacts", "c-1")

    assert len(http.calls) == 3


def test_timeout_then_success_is_invisible_to_the_caller(client, http):
    http.get(ACCOUNTING + "/Contacts/c-1", body=requests.ReadTimeout("read timed out"))
    http.get(ACCOUNTING + "/Contacts/c-1", content_type=JSON, body=envelope("Contacts", [contact(1)]))

    assert client.get_record("contacts", "c-1")["Name"] == "Customer 1"
