import json
import logging
import re

import kombu.utils.functional
import pytest
from celery import Celery
from webhooks_testkit import WEBHOOK_KEY, ChannelBook, queued_events, queued_messages

from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from webhooks.signatures import xero_signature

ITR_BODY = b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "LUWDSUDGSWNZVALZXBEV"}'
CONTACT_EVENT = {
    "resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
    "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
    "eventDateUtc": "2024-06-21T01:15:39.902",
    "eventType": "UPDATE",
    "eventCategory": "CONTACT",
    "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
    "tenantType": "ORGANISATION",
}
CREDIT_NOTE_EVENT = {
    "resourceUrl": "https://api.xero.com/api.xro/2.0/CreditNotes/55d84274-a3da-4829-a7c0-0cab601b95cc",
    "resourceId": "55d84274-a3da-4829-a7c0-0cab601b95cc",
    "tenantId": "aef86862-2015-4b6b-88bc-d89032cecc50",
    "tenantType": "ORGANISATION",
    "eventCategory": "CREDITNOTE",
    "eventType": "CREATE",
    "eventDateUtc": "2025-12-02T00:44:09.923",
    "data": {"Type": "ACCPAYCREDIT", "Status": "DRAFT"},
}


def batch_body(*events: dict, **extra_event_fields) -> bytes:
    # Non-canonical spacing on purpose, like Xero's own bodies.
    events = [{**event, **extra_event_fields} for event in events]
    return ('{"events": %s,"firstEventSequence": 1, "lastEventSequence": %d,"entropy":"S0m3r4Nd0m"}'
            % (json.dumps(events), len(events))).encode()


def post_signed(client, body: bytes, key: str = WEBHOOK_KEY):
    return client.post("/webhooks/xero", data=body, headers={"x-xero-signature": xero_signature(body, key)},
                       content_type="application/json; charset=utf-8")


@pytest.fixture
def client(celery_app):
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}),
                     max_body_bytes=4096)
    return app.test_client()


def assert_empty_xero_answer(response, status):
    assert response.status_code == status
    assert response.data == b""
    assert "Set-Cookie" not in response.headers


def test_intent_to_receive_with_a_good_signature_gets_an_empty_200_and_queues_nothing(client, broker_redis):
    assert_empty_xero_answer(post_signed(client, ITR_BODY), 200)
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_intent_to_receive_with_a_bad_or_missing_signature_gets_an_empty_401(client, broker_redis):
    assert_empty_xero_answer(post_signed(client, ITR_BODY, key="not-the-key"), 401)
    assert_empty_xero_answer(client.post("/webhooks/xero", data=ITR_BODY), 401)
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_an_empty_signing_key_refuses_even_a_body_signed_with_the_empty_key(celery_app):
    app = create_app(webhook_key="", enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}))
    assert_empty_xero_answer(post_signed(app.test_client(), ITR_BODY, key=""), 401)


def test_an_event_batch_is_queued_once_as_one_task_with_only_the_pipeline_fields(client, broker_redis):
    body = batch_body(CONTACT_EVENT, CREDIT_NOTE_EVENT, somethingNew="ignored")

    assert_empty_xero_answer(post_signed(client, body), 200)

    [message] = queued_messages(broker_redis, XERO_QUEUE)
    assert message["task"] == INGEST_XERO_EVENTS
    # The body as received, and one sync id per event: each event starts its own trip, with a fresh
    # sync id that every log line of that trip carries.
    [queued_body, sync_ids] = message["args"]
    assert queued_body == body.decode()
    assert len(set(sync_ids)) == 2 and all(len(s) == 32 for s in sync_ids)
    assert message["kwargs"] == {}
    # What the worker takes of it: the pipeline's fields of each event, with that event's sync id.
    events = queued_events(message)
    assert [event.pop("sync_id") for event in events] == sync_ids
    assert events == [CONTACT_EVENT, CREDIT_NOTE_EVENT]


def test_every_event_of_a_large_delivery_gets_its_own_sync_id(celery_app, broker_redis):
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}))
    events = [{**CONTACT_EVENT, "resourceId": f"contact-{n}"} for n in range(50)]
    assert_empty_xero_answer(post_signed(app.test_client(), batch_body(*events)), 200)
    [message] = queued_messages(broker_redis, XERO_QUEUE)
    sync_ids = [event["sync_id"] for event in queued_events(message)]
    assert len(set(sync_ids)) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in sync_ids), sync_ids


def test_a_tampered_batch_is_refused_and_not_queued(client, broker_redis):
    body = batch_body(CONTACT_EVENT)
    signature = xero_signature(body, WEBHOOK_KEY)
    tampered = body.replace(b"UPDATE", b"CREATE")
    response = client.post("/webhooks/xero", data=tampered, headers={"x-xero-signature": signature})
    assert_empty_xero_answer(response, 401)
    assert queued_messages(broker_redis, XERO_QUEUE) == []


# Xero drops a webhook answered later than 5 s (https://developer.xero.com/documentation/webhooks/configuring-your-server);
# the receiver's pauses between publish attempts may take at most this much of that window.
RETRY_PAUSES_BUDGET_SECONDS = 1.0


def test_broker_down_answers_503_within_xeros_window_so_xero_redelivers(monkeypatch):
    # A simulated clock for kombu's pauses between publish attempts: the test measures the waiting the
    # receiver chooses, not how fast this machine is, and an unbounded retry stops at the budget.
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        assert sum(pauses) <= RETRY_PAUSES_BUDGET_SECONDS, f"still retrying after pauses of {pauses} s"

    monkeypatch.setattr(kombu.utils.functional, "sleep", pause)
    dead_broker = Celery("dead-broker", broker="redis://127.0.0.1:1/0")  # nothing listens on port 1
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(dead_broker), zoho_channels=ChannelBook({}))
    response = post_signed(app.test_client(), batch_body(CONTACT_EVENT))
    dead_broker.close()
    # The retry policy pauses between attempts; none seen means kombu pauses elsewhere, unseen by this clock.
    assert pauses, "no pause between publish attempts went through kombu.utils.functional.sleep"
    assert sum(pauses) <= RETRY_PAUSES_BUDGET_SECONDS, pauses
    assert_empty_xero_answer(response, 503)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"events": [', "body is not valid JSON"),
        (b"\xff\xfe not utf-8", "body is not UTF-8"),
        (b"[]", "body must be a JSON object with an 'events' list"),
        (b'{"entropy": "x"}', "body has no 'events' field"),
        (b'{"events": {"resourceId": "x"}}', "'events' must be a list"),
        (b'{"events": ["x"]}', "events[0] must be an object"),
    ],
)
def test_signed_but_malformed_bodies_get_a_400_that_says_what_is_wrong(client, broker_redis, body, error):
    response = post_signed(client, body)
    assert response.status_code == 400
    assert response.get_json() == {"error": error}
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_an_event_without_tenant_id_is_named_in_the_400(client, broker_redis):
    incomplete = {k: v for k, v in CONTACT_EVENT.items() if k != "tenantId"}
    response = post_signed(client, batch_body(CONTACT_EVENT, {**incomplete, "eventType": ""}))
    assert response.status_code == 400
    assert response.get_json() == {"error": "events[1] is missing or has empty eventType, tenantId"}
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_an_oversize_body_gets_413_before_the_signature_is_checked(client, broker_redis):
    body = batch_body(*[CONTACT_EVENT] * 40)
    assert len(body) > 4096
    response = client.post("/webhooks/xero", data=body)
    assert response.status_code == 413
    assert response.get_json() == {"error": "request body is larger than the 4096 byte limit"}
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_logs_use_stable_keys_and_never_carry_the_body_signature_or_key(client, caplog):
    body = batch_body(CONTACT_EVENT)
    with caplog.at_level(logging.INFO, logger="webhooks"):
        post_signed(client, body)
        post_signed(client, body, key="wrong-key")
    assert [r.getMessage() for r in caplog.records] == ["webhook.xero.accepted", "webhook.xero.bad_signature"]
    accepted = caplog.records[0]
    assert accepted.event_count == 1
    # A delivery of one record names it and its trip's sync id as fields (that is how one record is
    # followed); the body is not logged.
    assert (accepted.xero_id, accepted.record_type, accepted.tenant_id) == (
        CONTACT_EVENT["resourceId"], "contact", CONTACT_EVENT["tenantId"])
    assert len(accepted.sync_id) == 32
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for secret in (WEBHOOK_KEY, xero_signature(body, WEBHOOK_KEY), body.decode()):
        assert secret not in logged


def test_a_delivery_of_many_events_is_one_line_naming_each_record_with_the_sync_id_it_was_queued_with(
        client, caplog, broker_redis):
    other_tenant = {**CREDIT_NOTE_EVENT, "tenantId": "0f1d3c57-5d0a-4a4e-9d8e-6c1a3f0b2e11"}
    with caplog.at_level(logging.INFO, logger="webhooks"):
        assert_empty_xero_answer(post_signed(client, batch_body(CONTACT_EVENT, other_tenant)), 200)
    [accepted] = [r for r in caplog.records if r.getMessage() == "webhook.xero.accepted"]
    [message] = queued_messages(broker_redis, XERO_QUEUE)
    queued_sync_ids = {event["resourceId"]: event["sync_id"] for event in queued_events(message)}
    assert (accepted.event_count, accepted.tenant_count) == (2, 2)
    assert accepted.xero_ids == [CONTACT_EVENT["resourceId"], CREDIT_NOTE_EVENT["resourceId"]]
    assert accepted.record_types == ["contact", "creditnote"]
    assert accepted.sync_ids == [queued_sync_ids[xero_id] for xero_id in accepted.xero_ids]
    assert accepted.tenant_ids == [CONTACT_EVENT["tenantId"], other_tenant["tenantId"]]
    # Many records: no single record's ids at the top of the line.
    assert not hasattr(accepted, "xero_id") and not hasattr(accepted, "sync_id")


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(client, broker_redis):
    at_limit = ITR_BODY[:-1] + b" " * (4096 - len(ITR_BODY)) + b"}"  # JSON allows the padding
    assert len(at_limit) == 4096
    assert_empty_xero_answer(post_signed(client, at_limit), 200)
    assert post_signed(client, at_limit + b" ").status_code == 413


def test_a_refused_oversized_delivery_is_logged_without_its_body(client, caplog):
    body = ITR_BODY[:-1] + b" " * 5000 + b"}"
    with caplog.at_level(logging.INFO, logger="webhooks"):
        assert post_signed(client, body).status_code == 413
    [refused] = [r for r in caplog.records if r.getMessage() == "webhook.refused"]
    assert (refused.status, refused.path) == (413, "/webhooks/xero")
    assert body.decode() not in caplog.text
