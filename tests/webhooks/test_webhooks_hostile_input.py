"""Hostile but correctly signed (or correctly tokened) input: NUL characters and overlong ids are
answered 400 with a message saying what is wrong, and nothing of the request is queued."""

from __future__ import annotations

import json

import pytest
from test_webhooks_xero import CONTACT_EVENT, CREDIT_NOTE_EVENT, batch_body, post_signed
from test_webhooks_zoho import CALLBACK, TOKEN
from webhooks_testkit import WEBHOOK_KEY, ChannelBook

from webhooks import create_app
from connector.validation import contains_nul, may_hold_nul
from connector.xero.webhook_body import delivered_events

LONG_ID = "a" * 129


@pytest.fixture
def queued():
    return []


@pytest.fixture
def client(queued):
    channels = ChannelBook({"1000000068001": (TOKEN, 7)})
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=lambda task, args, queue: queued.append((task, args)),
                     zoho_channels=channels)
    return app.test_client()


@pytest.mark.parametrize("field, value, error", [
    ("resourceId", "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777\u0000", "events[1].resourceId contains a NUL character"),
    ("tenantId", "c2cc9b6e\u0000", "events[1].tenantId contains a NUL character"),
    ("eventType", "UPDATE\u0000", "events[1].eventType contains a NUL character"),
    ("resourceUrl", "https://api.xero.com/\u0000", "events[1].resourceUrl contains a NUL character"),
    ("resourceId", LONG_ID, "events[1].resourceId is longer than 128 characters"),
    ("tenantId", LONG_ID, "events[1].tenantId is longer than 128 characters"),
    ("data", {"Type": "ACCPAYCREDIT\u0000"}, "events[1].data contains a NUL character"),
])
def test_a_signed_xero_batch_with_a_nul_or_an_overlong_id_is_400_and_nothing_is_queued(client, queued, field, value,
                                                                                        error):
    body = batch_body(CREDIT_NOTE_EVENT, {**CONTACT_EVENT, field: value})
    answer = post_signed(client, body)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": error}
    assert queued == []


def test_a_signed_body_that_is_not_utf8_is_400_and_nothing_is_queued(client, queued):
    body = json.dumps({"events": [CONTACT_EVENT]}).encode("utf-16")  # JSON, but not as Xero sends it
    answer = post_signed(client, body)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "body is not UTF-8"}
    assert queued == []


def test_a_nul_in_a_field_the_pipeline_never_takes_is_accepted_and_never_reaches_it(client, queued):
    body = batch_body({**CONTACT_EVENT, "somethingNew": "x\u0000y"})
    assert post_signed(client, body).status_code == 200
    [(_task, args)] = queued
    [event] = delivered_events(*args)
    assert not contains_nul(event) and "somethingNew" not in event


def test_ids_of_exactly_128_characters_are_accepted(client, queued):
    body = batch_body({**CONTACT_EVENT, "resourceId": "a" * 128, "tenantId": "b" * 128})
    assert post_signed(client, body).status_code == 200
    assert len(queued) == 1


@pytest.mark.parametrize("change, error", [
    ({"ids": ["900000000000789", "9000\u0000"]}, "ids[1] contains a NUL character"),
    ({"ids": ["900000000000789", LONG_ID]}, "ids[1] is longer than 128 characters"),
    ({"module": "Contacts\u0000"}, "module contains a NUL character"),
    ({"operation": "update\u0000"}, "operation contains a NUL character"),
    ({"affected_fields": [{"Contacts": ["Last_Name\u0000"]}]}, "affected_fields contains a NUL character"),
])
def test_a_tokened_zoho_notification_with_a_nul_or_an_overlong_id_is_400_and_nothing_is_queued(client, queued, change,
                                                                                               error):
    answer = client.post("/webhooks/zoho", data=json.dumps({**CALLBACK, **change}), content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json() == {"error": error}
    assert queued == []


@pytest.mark.parametrize("channel_id", ["1000000068001\u0000", LONG_ID])
def test_a_zoho_channel_id_with_a_nul_or_overlong_is_400(client, queued, channel_id):
    answer = client.post("/webhooks/zoho", data=json.dumps({**CALLBACK, "channel_id": channel_id}),
                         content_type="application/json")
    assert answer.status_code == 400 and "channel_id" in answer.get_json()["error"]
    assert queued == []


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("value", [{"k\u0000": "v"}, {"k": ["a", {"b": "c\u0000"}]}, "\u0000", ["x", "\u0000y"]])
def test_a_json_body_whose_strings_hold_a_nul_is_always_flagged_for_the_full_check(value, ensure_ascii):
    body = json.dumps({"events": value}, ensure_ascii=ensure_ascii).encode()
    assert contains_nul(json.loads(body))
    assert may_hold_nul(body) and may_hold_nul(body.decode())
    assert not may_hold_nul(json.dumps({"events": "no nul here \\ u0000"}).encode())
    assert not may_hold_nul(json.dumps({"events": "no nul here \\ u0000"}))
