"""What the receiver puts on the broker for one webhook: the task message and nothing else, on a real
Redis broker. No "task-sent" monitoring event (a second round trip per answer), and the task's
argument summary names the sizes of the body and the sync id list instead of repeating them."""

from __future__ import annotations

import json
import time

from celery import Celery
from webhooks_testkit import BROKER_URL, WEBHOOK_KEY, ChannelBook, production_receiver, queued_events, queued_messages

from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from tests.conftest import require_redis
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer, stop_task_sent_events
from webhooks.signatures import xero_signature

EVENT = {"resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
         "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777", "eventDateUtc": "2024-06-21T01:15:39.902",
         "eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
         "tenantType": "ORGANISATION"}
BODY = ('{"events": [%s, %s], "firstEventSequence": 1, "lastEventSequence": 2, "entropy": "S0m3r4Nd0m"}'
        % (json.dumps(EVENT), json.dumps({**EVENT, "resourceId": "second-id"}))).encode()


def deliver(celery_app, broker_redis) -> list[str]:
    """Post BODY signed to a receiver publishing through ``celery_app``; the broker's published channels."""
    listener = broker_redis.pubsub()
    listener.psubscribe("*")
    listener.get_message(timeout=1)  # the subscription's own confirmation
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}))
    response = app.test_client().post("/webhooks/xero", data=BODY,
                                      headers={"x-xero-signature": xero_signature(BODY, WEBHOOK_KEY)})
    assert response.status_code == 200
    # A PUBLISH made inside the answer reaches the listener within the same round trip; allow for scheduling.
    published, deadline = [], time.monotonic() + 1.0
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.1)
        if message is not None:
            published.append(message["channel"].decode())
    listener.close()
    return published


def test_a_publishing_only_receiver_sends_the_task_and_no_task_sent_event(broker_redis):
    with_events = Celery("with-sent-events", broker=BROKER_URL)
    with_events.conf.task_send_sent_event = True
    assert any("celeryev" in channel for channel in deliver(with_events, broker_redis))  # what is avoided

    broker_redis.flushdb()
    publishing_only = Celery("publishing-only", broker=BROKER_URL)
    publishing_only.conf.task_send_sent_event = True
    stop_task_sent_events(publishing_only)
    assert deliver(publishing_only, broker_redis) == []
    [message] = queued_messages(broker_redis, XERO_QUEUE)
    assert message["task"] == INGEST_XERO_EVENTS
    assert [event["resourceId"] for event in queued_events(message)] == [EVENT["resourceId"], "second-id"]
    with_events.close()
    publishing_only.close()


def test_the_task_message_summarises_the_body_and_sync_ids_instead_of_repeating_them(celery_app, broker_redis):
    deliver(celery_app, broker_redis)
    [raw] = broker_redis.lrange(XERO_QUEUE, 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == f"['<str of {len(BODY)}>', '<list of 2>']"
    assert EVENT["resourceId"] not in headers["argsrepr"]


def test_the_production_receiver_publishes_without_task_sent_events(pg_database_url):
    from workers.app import app as celery_app

    require_redis(4)
    configured = celery_app.conf.task_send_sent_event
    celery_app.conf.task_send_sent_event = True  # as celeryconfig has it for the workers (Flower)
    try:
        production_receiver(pg_database_url, f"{BROKER_URL.rsplit('/', 1)[0]}/4")
        assert celery_app.conf.task_send_sent_event is False
    finally:
        celery_app.conf.task_send_sent_event = configured
