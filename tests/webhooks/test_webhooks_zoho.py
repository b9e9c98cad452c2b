import json
import logging

import pytest
from webhooks_testkit import ChannelBook, queued_messages

from connector.queues import INGEST_ZOHO_NOTIFICATION, ZOHO_QUEUE
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer

TOKEN = "secret-max-50-chars"
# The callback shape of https://www.zoho.com/crm/developer/docs/api/v8/notifications/enable.html.
CALLBACK = {
    "server_time": 1735689600000,
    "query_params": {"tenant": "42"},
    "module": "Contacts",
    "resource_uri": "https://www.zohoapis.com/crm/v2/Contacts",
    "ids": ["900000000000789", "900000000000790"],
    "affected_fields": [],
    "operation": "insert",
    "channel_id": "1000000068001",
    "token": TOKEN,
}


@pytest.fixture
def app(celery_app):
    channels = ChannelBook({"1000000068001": (TOKEN, 7)})
    return create_app(webhook_key="k", enqueue=celery_enqueuer(celery_app), zoho_channels=channels)


def test_a_callback_with_the_registered_token_is_queued_without_the_token(app, broker_redis):
    response = app.test_client().post("/webhooks/zoho", json=CALLBACK)

    assert response.status_code == 200
    assert response.get_json() == {"status": "queued"}
    [message] = queued_messages(broker_redis, ZOHO_QUEUE)
    assert message["task"] == INGEST_ZOHO_NOTIFICATION
    assert len(message["args"][1].pop("sync_id")) == 32  # the trip's correlation id, started here
    assert message["args"] == [
        7,
        {
            "module": "Contacts",
            "ids": ["900000000000789", "900000000000790"],
            "operation": "insert",
            "channel_id": "1000000068001",
            "server_time": 1735689600000,
            "affected_fields": [],
        },
    ]
    assert TOKEN not in json.dumps(broker_redis.lrange(ZOHO_QUEUE, 0, -1), default=repr)


def test_a_numeric_channel_id_is_matched_as_its_string(app, broker_redis):
    response = app.test_client().post("/webhooks/zoho", json={**CALLBACK, "channel_id": 1000000068001})
    assert response.status_code == 200
    assert queued_messages(broker_redis, ZOHO_QUEUE)[0]["args"][1]["channel_id"] == "1000000068001"


@pytest.mark.parametrize(
    "forged",
    [
        {**CALLBACK, "token": "guessed"},
        {**CALLBACK, "channel_id": "999"},
        {k: v for k, v in CALLBACK.items() if k != "token"},
    ],
    ids=["wrong-token", "unknown-channel", "no-token"],
)
def test_unknown_channel_or_wrong_token_is_403_counted_and_logged_without_the_token(app, broker_redis, caplog, forged):
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="webhooks"):
        first = client.post("/webhooks/zoho", json=forged)
        client.post("/webhooks/zoho", json=forged)

    assert first.status_code == 403
    assert first.get_json() == {"error": "unknown channel or wrong token"}
    assert app.extensions["ml_connector"]["rejected_zoho_callbacks"] == 2
    assert [r.getMessage() for r in caplog.records] == ["webhook.zoho.rejected"] * 2
    assert "guessed" not in caplog.text and TOKEN not in caplog.text
    assert queued_messages(broker_redis, ZOHO_QUEUE) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "body is not valid JSON"),
        (b'["ids"]', "body must be a JSON object"),
        (json.dumps({k: v for k, v in CALLBACK.items() if k not in ("module", "ids")}).encode(), "missing module, ids"),
        (json.dumps({**CALLBACK, "ids": []}).encode(), "ids must be a non-empty list of record ids"),
        (json.dumps({**CALLBACK, "ids": "900"}).encode(), "ids must be a non-empty list of record ids"),
        (json.dumps({**CALLBACK, "token": 5}).encode(), "token must be a string"),
        (json.dumps({**CALLBACK, "channel_id": [1]}).encode(), "channel_id must be a string or an integer"),
    ],
)
def test_malformed_callbacks_get_a_400_that_says_what_is_wrong(app, broker_redis, body, error):
    response = app.test_client().post("/webhooks/zoho", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"error": error}
    assert app.extensions["ml_connector"]["rejected_zoho_callbacks"] == 0
    assert queued_messages(broker_redis, ZOHO_QUEUE) == []


def test_broker_down_answers_503():
    from celery import Celery

    dead_broker = Celery("dead-broker", broker="redis://127.0.0.1:1/0")
    app = create_app(webhook_key="k", enqueue=celery_enqueuer(dead_broker),
                     zoho_channels=ChannelBook({"1000000068001": (TOKEN, 7)}))
    response = app.test_client().post("/webhooks/zoho", json=CALLBACK)
    dead_broker.close()
    assert response.status_code == 503
    assert "error" in response.get_json()
