import threading

import pytest
import requests
from celery import Celery
from werkzeug.serving import make_server
from webhooks_testkit import WEBHOOK_KEY, ChannelBook, queued_events, queued_messages

from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from webhooks import create_app
from webhooks.enqueue import EnqueueFailed, celery_enqueuer
from webhooks.signatures import xero_signature


ADMIN_TOKEN = "operator-token-for-tests-0123456789"


def make_app(liveness=None, status=None, max_body_bytes=1_000_000, admin_token=ADMIN_TOKEN):
    def enqueue_nothing(task_name: str, args: list, queue: str) -> None:
        raise AssertionError("these requests must not enqueue")

    return create_app(webhook_key=WEBHOOK_KEY, enqueue=enqueue_nothing, zoho_channels=ChannelBook({}),
                      liveness=liveness, status=status, max_body_bytes=max_body_bytes, admin_token=admin_token)


def test_healthz_is_a_bare_ok_when_every_part_answers():
    response = make_app(liveness={"redis": lambda: True, "database": lambda: None}).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_is_503_naming_the_part_that_does_not_answer():
    def broken() -> None:
        raise ConnectionError("database unreachable at postgres://user:pw@db")

    response = make_app(liveness={"redis": lambda: True, "database": broken}).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "failing": ["database"]}
    assert b"pw@db" not in response.data


def test_status_shows_details_to_the_operator_only_and_stays_200_when_degraded():
    details = {"status": "degraded", "connections": [{"id": 1, "name": "Kea Ltd", "state": "needs_reauth"}]}
    client = make_app(status=lambda: details).test_client()
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
    response = client.get("/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    assert response.get_json() == {**details, "rejected_zoho_callbacks": 0}
    assert "Kea Ltd" not in client.get("/healthz").get_data(as_text=True)


def test_status_is_503_when_the_status_check_raises():
    def broken() -> dict:
        raise RuntimeError("database unreachable at postgres://user:pw@db")

    response = make_app(status=broken).test_client().get("/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "error": "status check failed"}


def test_unknown_paths_and_wrong_methods_get_json_errors():
    client = make_app().test_client()
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no such endpoint"}
    wrong_method = client.get("/webhooks/xero")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json() == {"error": "method not allowed; use OPTIONS, POST"}
    assert "POST" in wrong_method.headers["Allow"]


def test_oversize_zoho_callback_gets_413_from_the_content_length_limit():
    response = make_app(max_body_bytes=64).test_client().post("/webhooks/zoho", data=b"{" + b" " * 100 + b"}")
    assert response.status_code == 413
    assert response.get_json() == {"error": "request body is larger than the 64 byte limit"}


def test_enqueuer_raises_enqueue_failed_without_echoing_the_broker_password():
    dead_broker = Celery("dead-broker", broker="redis://:hunter2@127.0.0.1:1/0")
    with pytest.raises(EnqueueFailed) as failure:
        celery_enqueuer(dead_broker)("connector.anything", [1], "xero")
    dead_broker.close()
    assert "hunter2" not in str(failure.value)
    assert "connector.anything" in str(failure.value)


@pytest.fixture
def live_server(celery_app):
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=celery_enqueuer(celery_app), zoho_channels=ChannelBook({}),
                     max_body_bytes=2048)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_over_real_http_a_signed_batch_is_queued_and_answered_with_an_empty_200(live_server, broker_redis):
    event = {"resourceId": "r1", "eventCategory": "INVOICE", "eventType": "CREATE", "tenantId": "t1",
             "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/r1", "eventDateUtc": "2024-06-21T01:15:39.902",
             "tenantType": "ORGANISATION"}
    body = b'{"events":[{"resourceId": "r1", "eventCategory":"INVOICE", "eventType":"CREATE", "tenantId":"t1", ' \
           b'"resourceUrl":"https://api.xero.com/api.xro/2.0/Invoices/r1","eventDateUtc":"2024-06-21T01:15:39.902",' \
           b'"tenantType":"ORGANISATION"}],"firstEventSequence": 3,"lastEventSequence": 3,"entropy":"E"}'
    response = requests.post(f"{live_server}/webhooks/xero", data=body, timeout=5,
                             headers={"x-xero-signature": xero_signature(body, WEBHOOK_KEY),
                                      "Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200
    assert response.content == b""
    assert "Set-Cookie" not in response.headers
    [message] = queued_messages(broker_redis, XERO_QUEUE)
    assert message["task"] == INGEST_XERO_EVENTS
    [queued] = queued_events(message)
    assert queued.pop("sync_id")
    assert queued == event


def test_over_real_http_a_chunked_body_without_content_length_is_capped(live_server, broker_redis):
    def chunks():
        yield b'{"events": ['
        for _ in range(100):
            yield b'{"resourceId": "r1", "eventCategory": "INVOICE"},'
        yield b"{}]}"

    response = requests.post(f"{live_server}/webhooks/xero", data=chunks(), timeout=5)
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    assert queued_messages(broker_redis, XERO_QUEUE) == []


def test_over_real_http_a_chunked_zoho_callback_over_the_limit_is_413_not_400(live_server):
    def chunks():
        yield b'{"module": "Contacts", "ids": ['
        yield b'"900000000000789",' * 200
        yield b'"1"]}'

    response = requests.post(f"{live_server}/webhooks/zoho", data=chunks(), timeout=5)
    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than the 2048 byte limit"}


def test_operator_pages_and_their_refusals_send_no_referrer_and_carry_the_page_headers():
    """Every answer under /console and /oauth (pages, refusals, unknown paths) keeps its URL out of any Referer,
    is never cached nor framed, and is not sniffed into HTML: a 401 or 404 there is as guarded as a page."""
    def enqueue_nothing(task_name: str, args: list, queue: str) -> None:
        raise AssertionError("these requests must not enqueue")

    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=enqueue_nothing, zoho_channels=ChannelBook({}),
                     admin_token=ADMIN_TOKEN, oauth=object(), public_url="https://connector.example",
                     console=object())
    client = app.test_client()
    operator = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "text/html"}
    answers = {
        "oauth page": client.get("/oauth/nosuch/start", headers=operator),
        "oauth refusal": client.get("/oauth/xero/callback?code=c&state=s", headers={"Accept": "text/html"}),
        "console refusal": client.get("/console/", headers={"Accept": "text/html"}),
        "console unknown path": client.get("/console/no-such-page", headers=operator),
    }
    assert answers["oauth page"].status_code == 404 and answers["oauth page"].mimetype == "text/html"
    assert answers["console refusal"].status_code == 401
    for name, answer in answers.items():
        assert answer.headers.get("Referrer-Policy") == "no-referrer", name
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", name
        assert answer.headers.get("Cache-Control") == "no-store", name
        assert "frame-ancestors 'none'" in answer.headers.get("Content-Security-Policy", ""), name
