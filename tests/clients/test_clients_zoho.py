"""ZohoClient against `responses`, with the real token manager, credential store and Redis."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from tests.clients.conftest import ZOHO_ACCOUNTS_URL, ZOHO_API_DOMAIN

from connector.errors import ApiError, NeedsReauth, RateLimited, RecordRejected, TransientError
from connector.zoho.client import ZohoClient

CRM = ZOHO_API_DOMAIN + "/crm/v8"
JSON = "application/json;charset=UTF-8"


def success(n: int, action: str = "insert") -> dict:
    # Success item of https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html and upsert-records.html.
    return {"code": "SUCCESS", "status": "success", "action": action, "duplicate_field": None,
            "message": "record added" if action == "insert" else "record updated",
            "details": {"id": f"90000000000{n:04d}", "Created_Time": "2025-01-31T10:00:00+00:00",
                        "Modified_Time": "2025-01-31T10:00:00+00:00",
                        "Created_By": {"id": "900000000000001", "name": "API User"}}}


def failure(field: str, index: int) -> dict:
    return {"code": "MANDATORY_NOT_FOUND", "status": "error", "message": "required field not found",
            "details": {"api_name": field, "json_path": f"$.data[{index}].{field}"}}


@pytest.fixture
def client(session, zoho_tokens):
    return ZohoClient(session=session, tokens=zoho_tokens)


def test_calls_go_to_the_stored_api_domain_with_the_zoho_auth_header(client, http):
    http.get(CRM + "/Contacts/42", json={"data": [{"id": "42", "Last_Name": "Lovelace"}]})

    assert client.get_record("Contacts", "42") == {"id": "42", "Last_Name": "Lovelace"}
    assert http.calls[0].request.url == CRM + "/Contacts/42"
    assert http.calls[0].request.headers["Authorization"] == "Zoho-oauthtoken zoho-access-1"


def test_upsert_sends_chunks_of_one_hundred_and_numbers_results_across_chunks(client, http):
    def answer(request):
        data = json.loads(request.body)["data"]
        return 201, {"Content-Type": JSON}, json.dumps({"data": [success(int(r["Last_Name"])) for r in data]})

    http.add_callback(responses.POST, CRM + "/Contacts/upsert", callback=answer)
    records = [{"Last_Name": str(n), "Email": f"p{n}@example.com"} for n in range(250)]

    results = client.upsert("Contacts", records, duplicate_check_fields=["Email"])

    bodies = [json.loads(call.request.body) for call in http.calls]
    assert [len(b["data"]) for b in bodies] == [100, 100, 50]
    assert all(b["duplicate_check_fields"] == ["Email"] and b["trigger"] == [] for b in bodies)
    assert [r.index for r in results] == list(range(250))
    assert results[249].id == "900000000000249" and results[249].ok and results[249].action == "insert"


def test_207_is_parsed_record_by_record(client, http):
    http.post(CRM + "/Contacts/upsert", status=207, content_type=JSON,
              body=json.dumps({"data": [success(1, "update"), failure("Last_Name", 1), success(3)]}))

    first, second, third = client.upsert("Contacts", [{}, {}, {}], duplicate_check_fields=["Email"], trigger=["workflow"])

    assert json.loads(http.calls[0].request.body)["trigger"] == ["workflow"]
    assert (first.ok, first.action, first.id, first.message) == (True, "update", "900000000000001", "record updated")
    assert (second.ok, second.id, second.code) == (False, None, "MANDATORY_NOT_FOUND")
    assert second.details == {"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"}
    with pytest.raises(RecordRejected, match="MANDATORY_NOT_FOUND"):
        second.raise_if_rejected()
    assert third.ok


def test_400_with_per_record_data_is_parsed_not_raised(client, http):
    http.post(CRM + "/Contacts", status=400, content_type=JSON,
              body=json.dumps({"data": [failure("Last_Name", 0), failure("Last_Name", 1)]}))

    results = client.insert("Contacts", [{"Email": "a@example.com"}, {"Email": "b@example.com"}])

    assert [(r.index, r.ok, r.code) for r in results] == [(0, False, "MANDATORY_NOT_FOUND"), (1, False, "MANDATORY_NOT_FOUND")]


def test_decimals_are_written_as_exact_json_numbers(client, http):
    http.post(CRM + "/Products/upsert", status=201, content_type=JSON, body=json.dumps({"data": [success(1)]}))

    client.upsert("Products", [{"Product_Name": "Widget", "Unit_Price": Decimal("19.90"),
                                "Qty_in_Stock": Decimal("0.1"), "Tax": Decimal("1234567890.123456789")}],
                  duplicate_check_fields=["Product_Name"])

    body = http.calls[0].request.body.decode()
    assert '"Unit_Price":19.90' in body and '"Qty_in_Stock":0.1,' in body and '"Tax":1234567890.123456789' in body
    assert json.loads(body, parse_float=Decimal)["data"][0]["Tax"] == Decimal("1234567890.123456789")


def test_update_puts_records_that_carry_their_ids(client, http):
    http.put(CRM + "/Contacts", content_type=JSON, body=json.dumps({"data": [success(1, "update")]}))

    [result] = client.update("Contacts", [{"id": "900000000000001", "Phone": "555"}])

    assert result.ok and result.action == "update"
    with pytest.raises(ValueError):
        client.update("Contacts", [{"Phone": "555"}])


def test_204_means_no_record_and_no_rows(client, http):
    http.get(CRM + "/Contacts/404404", status=204)
    http.get(CRM + "/Contacts", status=204)

    assert client.get_record("Contacts", "404404") is None
    assert client.list_records("Contacts", fields=["Email"]) == ([], False)


def test_list_records_pages_and_sends_if_modified_since(client, http):
    http.get(CRM + "/Contacts", content_type=JSON, body=json.dumps({
        "data": [{"id": "1", "Email": "a@example.com", "Annual_Revenue": 1250.50}],
        "info": {"per_page": 1, "count": 1, "page": 2, "sort_by": "id", "sort_order": "desc", "more_records": True}}))
    since = datetime(2026, 1, 5, 15, 26, 49, 123000, tzinfo=timezone(timedelta(hours=5, minutes=30)))

    rows, more = client.list_records("Contacts", fields=["Email", "Annual_Revenue"], modified_since=since, page=2, per_page=1)

    assert more is True and rows[0]["Annual_Revenue"] == Decimal("1250.50")
    request = http.calls[0].request
    assert request.headers["If-Modified-Since"] == "2026-01-05T15:26:49+05:30"
    assert parse_qs(urlsplit(request.url).query) == {"fields": ["Email,Annual_Revenue"], "page": ["2"], "per_page": ["1"]}


def test_304_not_modified_gives_no_rows(client, http):
    http.get(CRM + "/Contacts", status=304)

    assert client.list_records("Contacts", fields=["Email"], modified_since=datetime(2026, 1, 1)) == ([], False)


def test_get_records_by_ids(client, http):
    http.get(CRM + "/Contacts", json={"data": [{"id": "1"}, {"id": "2"}]})

    assert client.get_records("Contacts", ["1", "2", "1"], ["Email"]) == [{"id": "1"}, {"id": "2"}]
    assert parse_qs(urlsplit(http.calls[0].request.url).query)["ids"] == ["1,2"]


def test_metadata_endpoints(client, http):
    http.get(CRM + "/settings/modules", json={"modules": [{"api_name": "Contacts"}, {"api_name": "Invoices"}]})
    http.get(CRM + "/settings/fields", json={"fields": [{"api_name": "Email", "data_type": "email"}]})

    assert [m["api_name"] for m in client.modules()] == ["Contacts", "Invoices"]
    assert client.fields("Contacts") == [{"api_name": "Email", "data_type": "email"}]
    assert parse_qs(urlsplit(http.calls[1].request.url).query) == {"module": ["Contacts"]}


def test_watch_channels(client, http):
    ok = {"code": "SUCCESS", "status": "success",
          "message": "Successfully subscribed for actions-watch of the given module",
          "details": {"events": [{"channel_id": "1000000068001", "resource_name": "Contacts"}]}}
    http.post(CRM + "/actions/watch", status=201, json={"watch": [ok]})
    http.patch(CRM + "/actions/watch", status=400, json={"watch": [
        {"code": "NOT_SUBSCRIBED", "details": {}, "message": "Not subscribed for actions-watch of the given channel",
         "status": "error"}]})
    http.get(CRM + "/actions/watch", json={"watch": [{"channel_id": 1000000068001}], "info": {"more_records": False}})
    http.delete(CRM + "/actions/watch", json={"watch": [{"code": "SUCCESS", "status": "success"}]})
    channel = {"channel_id": "1000000068001", "events": ["Contacts.all"], "notify_url": "https://example.com/zoho",
               "channel_expiry": datetime(2026, 1, 12, 9, 0, 0, 500000, tzinfo=timezone.utc)}

    assert client.enable_watch([channel]) == [ok]
    with pytest.raises(RecordRejected, match="NOT_SUBSCRIBED"):
        client.update_watch([{"channel_id": "1", "channel_expiry": datetime(2026, 1, 12, tzinfo=timezone.utc)}])
    assert client.get_watch() == [{"channel_id": 1000000068001}]
    client.disable_watch([1000000068001, "2"])

    sent = json.loads(http.calls[0].request.body)["watch"][0]
    assert sent["channel_expiry"] == "2026-01-12T09:00:00+00:00"  # Zoho rejects fractional seconds
    assert parse_qs(urlsplit(http.calls[3].request.url).query) == {"channel_ids": ["1000000068001,2"]}


def test_invalid_token_refreshes_once_and_retries(client, http, credentials, connection_id):
    http.get(CRM + "/Contacts/1", status=401,
             json={"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
    http.get(CRM + "/Contacts/1", json={"data": [{"id": "1"}]})
    http.post(ZOHO_ACCOUNTS_URL + "/oauth/v2/token", json={
        "access_token": "zoho-access-2", "api_domain": ZOHO_API_DOMAIN, "token_type": "Bearer", "expires_in": 3600})

    assert client.get_record("Contacts", "1") == {"id": "1"}

    crm_calls = [c for c in http.calls if c.request.url.startswith(CRM)]
    assert [c.request.headers["Authorization"] for c in crm_calls] == [
        "Zoho-oauthtoken zoho-access-1", "Zoho-oauthtoken zoho-access-2"]
    assert credentials.load(connection_id, "zoho").tokens.access_token.reveal() == "zoho-access-2"


def test_invalid_token_twice_means_reconnect(client, http):
    http.get(CRM + "/Contacts/1", status=401,
             json={"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
    http.post(ZOHO_ACCOUNTS_URL + "/oauth/v2/token", json={
        "access_token": "zoho-access-2", "api_domain": ZOHO_API_DOMAIN, "token_type": "Bearer", "expires_in": 3600})

    with pytest.raises(NeedsReauth) as raised:
        client.get_record("Contacts", "1")
    assert "zoho-access" not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, "OAUTH_SCOPE_MISMATCH", NeedsReauth),
        (429, "TOO_MANY_REQUESTS", RateLimited),
        (500, "INTERNAL_ERROR", TransientError),
        (400, "INVALID_MODULE", ApiError),
        (403, "NO_PERMISSION", ApiError),
    ],
)
def test_request_level_errors(client, http, status, code, error):
    http.post(CRM + "/Widgets/upsert", status=status,
              json={"code": code, "details": {}, "message": "something went wrong", "status": "error"})

    with pytest.raises(error, match=code) as raised:
        client.upsert("Widgets", [{"Name": "x"}], duplicate_check_fields=["Name"])

    assert len([c for c in http.calls if c.request.url.startswith(CRM)]) == 1
    if error is RateLimited:
        assert raised.value.retry_after > 0 and raised.value.problem == "TOO_MANY_REQUESTS"
    if error is ApiError:
        assert raised.value.status == status


def test_a_429_parks_the_work_for_the_configured_wait(session, zoho_tokens, http, monkeypatch):
    from connector.settings import Settings

    monkeypatch.setenv("ZOHO_RATE_LIMIT_WAIT", "5s")
    wait = Settings.from_env().zoho_rate_limit_wait
    assert wait == 5.0 and Settings().zoho_rate_limit_wait == 30.0  # Zoho sends no Retry-After: ours
    http.post(CRM + "/Widgets/upsert", status=429,
              json={"code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many requests", "status": "error"})
    with pytest.raises(RateLimited) as raised:
        ZohoClient(session=session, tokens=zoho_tokens, rate_limit_wait=wait).upsert(
            "Widgets", [{"Name": "x"}], duplicate_check_fields=["Name"])
    assert raised.value.retry_after == 5.0


def test_a_write_that_adds_or_deletes_lines_is_not_replayed_on_a_read_timeout(client, http):
    import requests

    http.add(responses.POST, CRM + "/Invoices/upsert", body=requests.ReadTimeout("answer lost"))
    new_line = {"Subject": "INV-1", "Invoiced_Items": [{"Product_Name": {"id": "1"}, "Quantity": 1}]}
    with pytest.raises(TransientError):
        client.upsert("Invoices", [new_line], duplicate_check_fields=["Xero_Invoice_ID"])
    assert len(http.calls) == 1  # Zoho may have applied it: the caller reads and decides again

    edits_only = {"Subject": "INV-1", "Invoiced_Items": [{"id": "7", "Quantity": 2}]}
    with pytest.raises(TransientError):
        client.upsert("Invoices", [edits_only], duplicate_check_fields=["Xero_Invoice_ID"])
    assert len(http.calls) == 1 + 3  # edits by line id are safe to replay: the quick transport retries apply
