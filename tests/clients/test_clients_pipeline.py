"""The one request pipeline (connector.http): what listeners see of each response, call_purpose, and
that a failing listener never breaks a request. Both vendors' clients and token managers go through it."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from tests.clients.conftest import TENANT_ID, XERO_API_URL, XERO_TOKEN_URL, ZOHO_API_DOMAIN

from connector.errors import RateLimited
from connector.http import ResponseSeen, add_response_listener, call_purpose, remove_response_listener
from connector.xero.client import XeroClient
from connector.zoho.client import ZohoClient

ACCOUNTING = XERO_API_URL + "/api.xro/2.0"
CRM = ZOHO_API_DOMAIN + "/crm/v8"
JSON = "application/json; charset=utf-8"
CONTACT_ID = "00000000-0000-4000-8000-000000000001"
CONTACTS = json.dumps({"Contacts": [{"ContactID": CONTACT_ID, "Name": "Customer 1"}]})


@pytest.fixture
def seen():
    responses_seen: list[ResponseSeen] = []
    add_response_listener(responses_seen.append)
    yield responses_seen
    remove_response_listener(responses_seen.append)


@pytest.fixture
def xero(session, xero_tokens):
    return XeroClient(session=session, tokens=xero_tokens, tenant_id=TENANT_ID, api_url=XERO_API_URL)


@pytest.fixture
def zoho(session, zoho_tokens):
    return ZohoClient(session=session, tokens=zoho_tokens)


def test_each_response_is_seen_once_with_its_path_template_size_purpose_and_limit_headers(xero, http, seen,
                                                                                            connection_id):
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=CONTACTS, content_type=JSON,
             headers={"X-DayLimit-Remaining": "4984", "X-MinLimit-Remaining": "59", "X-AppMinLimit-Remaining": "9999",
                      "Xero-Correlation-Id": "0b8d1f3e-0000-4000-8000-00000000c0de"})

    with call_purpose("webhook_fetch"):
        xero.get_record("contacts", CONTACT_ID)

    assert seen == [ResponseSeen(
        vendor="xero", connection_id=connection_id, method="GET", endpoint="/api.xro/2.0/Contacts/{id}", status=200,
        bytes_received=len(CONTACTS.encode()), purpose="webhook_fetch",
        limit_headers={"X-DayLimit-Remaining": "4984", "X-MinLimit-Remaining": "59",
                       "X-AppMinLimit-Remaining": "9999"},
    )]


def test_a_429_is_seen_with_its_retry_after_and_problem_before_it_is_raised(xero, http, seen):
    http.get(ACCOUNTING + "/Contacts", status=429, body="", headers={"Retry-After": "31",
                                                                    "X-Rate-Limit-Problem": "minute"})

    with pytest.raises(RateLimited) as raised:
        xero.list_records("contacts")

    assert [(s.status, s.purpose, s.limit_headers) for s in seen] == [
        (429, "unspecified", {"X-Rate-Limit-Problem": "minute", "Retry-After": "31"})]
    assert (raised.value.retry_after, raised.value.problem) == (31.0, "minute")


def test_a_refused_token_shows_three_responses_api_token_endpoint_api(xero, http, seen):
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", status=401, json={"Title": "Unauthorized"})
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=CONTACTS, content_type=JSON)
    http.post(XERO_TOKEN_URL, json={"access_token": "xero-access-2", "refresh_token": "xero-refresh-2",
                                    "expires_in": 1800})

    with call_purpose("catch_up"):
        assert xero.get_record("contacts", CONTACT_ID)["Name"] == "Customer 1"

    assert [(s.vendor, s.method, s.endpoint, s.status, s.purpose) for s in seen] == [
        ("xero", "GET", "/api.xro/2.0/Contacts/{id}", 401, "catch_up"),
        ("xero", "POST", "/connect/token", 200, "catch_up"),
        ("xero", "GET", "/api.xro/2.0/Contacts/{id}", 200, "catch_up"),
    ]


def test_a_broken_connection_retried_by_transport_is_seen_once(xero, http, seen):
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=requests.ConnectionError("reset"))
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=CONTACTS, content_type=JSON)

    xero.get_record("contacts", CONTACT_ID)

    assert len(http.calls) == 2 and [s.status for s in seen] == [200]


def test_zoho_responses_are_seen_with_numeric_ids_templated(zoho, http, seen, connection_id):
    http.get(CRM + "/Contacts/5843104000000424001", json={"data": [{"id": "5843104000000424001"}]})

    with call_purpose("write_back"):
        zoho.get_record("Contacts", "5843104000000424001")

    assert [(s.vendor, s.connection_id, s.endpoint, s.status, s.purpose, s.limit_headers) for s in seen] == [
        ("zoho", connection_id, "/crm/v8/Contacts/{id}", 200, "write_back", {})]


def test_a_failing_listener_is_logged_and_neither_breaks_the_request_nor_the_other_listeners(xero, http, seen, caplog):
    def broken(_: ResponseSeen) -> None:
        raise RuntimeError("listener bug")

    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=CONTACTS, content_type=JSON)
    add_response_listener(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="connector.http"):
            assert xero.get_record("contacts", CONTACT_ID)["Name"] == "Customer 1"
    finally:
        remove_response_listener(broken)

    assert len(seen) == 1
    assert any("response listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_call_purpose_is_unspecified_by_default_and_restored_after_a_nested_block():
    assert call_purpose.get() == "unspecified"
    with call_purpose("backfill"):
        with call_purpose("check"):
            assert call_purpose.get() == "check"
        assert call_purpose.get() == "backfill"
    assert call_purpose.get() == "unspecified"


def test_call_purpose_can_also_be_set_and_reset_like_a_context_variable():
    token = call_purpose.set("payments")
    assert call_purpose.get() == "payments"
    call_purpose.reset(token)
    assert call_purpose.get() == "unspecified"


def test_a_listener_added_twice_hears_each_response_once(xero, http, seen):
    add_response_listener(seen.append)  # the fixture added it already
    http.get(ACCOUNTING + f"/Contacts/{CONTACT_ID}", body=CONTACTS, content_type=JSON)

    xero.get_record("contacts", CONTACT_ID)

    assert len(seen) == 1
