"""What the receiver puts on the broker for one webhook: the task message and nothing else, on a real
Redis broker. No "task-sent" monitoring event (a second round trip per answer), and the task's
argument summary names the sizes of the body and the sync id list instead of repeating them."""

from __future__ import annotations

import json
import time

import kombu.transport.redis
import pytest
from celery import Celery
from webhooks_testkit import BROKER_URL, WEBHOOK_KEY, ChannelBook, production_receiver, queued_events, queued_messages

from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from tests.conftest import redis_db, redis_url, require_redis
from webhooks import create_app
from webhooks.enqueue import PublishingRedisChannel, celery_enqueuer, reuse_redis_clients, stop_task_sent_events
from webhooks.signatures import xero_signature

EVENT = {"resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
         "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777", "eventDateUtc": "2024-06-21T01:15:39.902",
         "eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
         "tenantType": "ORGANISATION"}
BODY = ('{"events": [%s, %s], "firstEventSequence": 1, "lastEventSequence": 2, "entropy": "S0m3r4Nd0m"}'
        % (json.dumps(EVENT), json.dumps({**EVENT, "resourceId": "second-id"}))).encode()


# Published by the test after the answer: the end of what the answer published.
MARKER_CHANNEL = "test.after-the-answer"


def deliver(celery_app, broker_redis) -> list[str]:
    """``post``, and the channels the broker published on while it was answered."""
    listener = broker_redis.pubsub()
    listener.psubscribe("*")
    listener.get_message(timeout=1)  # the subscription's own confirmation
    post(celery_app)
    # Redis hands a subscriber the messages in the order it ran their PUBLISHes, so whatever the answer
    # published reaches the listener before this marker, published once the answer is back.
    broker_redis.publish(MARKER_CHANNEL, "")
    published, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message is None:
            continue
        if message["channel"].decode() == MARKER_CHANNEL:
            listener.close()
            return published
        published.append(message["channel"].decode())
    raise AssertionError(f"the marker published after the answer never arrived; before it: {published}")


def post(celery_app) -> None:
    """Post BODY signed to a receiver publishing through ``celery_app``; it answers 200."""
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}))
    response = app.test_client().post("/webhooks/xero", data=BODY,
                                      headers={"x-xero-signature": xero_signature(BODY, WEBHOOK_KEY)})
    assert response.status_code == 200


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


def test_the_production_receiver_publishes_without_task_sent_events_and_reuses_redis_clients(pg_database_url):
    from workers.app import app as celery_app

    require_redis(redis_db("webhooks-production"))
    redis_address = redis_url(redis_db("webhooks-production"))
    conf = celery_app.conf
    configured = conf.task_send_sent_event, conf.broker_transport, conf.broker_url
    # As celeryconfig has them in production: sent events on for the workers (Flower), Redis the broker.
    conf.task_send_sent_event, conf.broker_url = True, redis_address
    try:
        production_receiver(pg_database_url, redis_address)
        assert conf.task_send_sent_event is False
        assert conf.broker_transport == "webhooks.enqueue:PublishingRedisTransport"
    finally:
        conf.task_send_sent_event, conf.broker_transport, conf.broker_url = configured


def clients_made_by_publishing(celery_app, monkeypatch, deliveries: int) -> int:
    """How many Redis clients the broker channels built while ``deliveries`` webhooks were published."""
    made = []
    channel_class = kombu.transport.redis.Channel
    original = channel_class._create_client
    monkeypatch.setattr(channel_class, "_create_client", lambda self, *a, **k: made.append(1) or original(self, *a, **k))
    for _ in range(deliveries):
        post(celery_app)
    monkeypatch.undo()
    return len(made)


def test_a_receiver_on_redis_keeps_one_client_for_its_puts_and_declares_no_binding(broker_redis, monkeypatch):
    stock = Celery("stock", broker=BROKER_URL)
    stop_task_sent_events(stock)
    assert clients_made_by_publishing(stock, monkeypatch, 5) >= 5  # what is avoided
    stock.close()
    broker_redis.flushdb()

    publishing = Celery("publishing", broker=BROKER_URL)
    stop_task_sent_events(publishing)
    reuse_redis_clients(publishing)
    assert clients_made_by_publishing(publishing, monkeypatch, 1) > 0  # the channel's own
    assert clients_made_by_publishing(publishing, monkeypatch, 5) == 0
    # Every task is in its queue's list, on a Redis that never saw the queue declared.
    assert [m["task"] for m in queued_messages(broker_redis, XERO_QUEUE)] == [INGEST_XERO_EVENTS] * 6
    assert broker_redis.keys("_kombu.binding.*") == []
    publishing.close()


def test_the_kept_client_follows_the_pool_kombu_rebuilds_after_a_lost_connection(broker_redis):
    publishing = Celery("publishing", broker=BROKER_URL)
    reuse_redis_clients(publishing)
    with publishing.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, PublishingRedisChannel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert first is again
        channel._disconnect_pools()  # what kombu does when the connection is lost
        with channel.conn_or_acquire() as after:
            assert after is not first and after.connection_pool is channel.pool
            assert after.ping()
    publishing.close()


@pytest.mark.parametrize("broker_url", ["memory://", "amqp://guest@127.0.0.1:5672//"])
def test_other_brokers_keep_their_own_transport(broker_url):
    other = Celery("other", broker=broker_url)
    reuse_redis_clients(other)
    assert other.conf.broker_transport is None
    other.close()
