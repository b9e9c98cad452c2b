"""`connector status` reads the queue depths from whichever broker is configured: Redis or RabbitMQ
(the real ones on this machine), and says "in-process" only for the embedded broker."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from kombu import Connection, Queue

from connector.settings import Settings
from connector.status import queue_depths
from tests.conftest import redis_db, redis_url, require_redis

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
QUEUE_DEPTH_DB = redis_db("queue-depths")


def publish(broker_url: str, queue: Queue, count: int) -> None:
    # Publisher confirms: RabbitMQ routes a publish asynchronously, so without them another connection
    # may count the queue before every message is in it.
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer()
        for n in range(count):
            producer.publish({"n": n}, routing_key=queue.name, declare=[queue], retry=True)


def delete_queues(broker_url: str, names: list[str]) -> None:
    with Connection(broker_url) as connection:
        for name in names:
            Queue(name, channel=connection.channel()).delete()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request):
    if request.param == "redis":
        require_redis(QUEUE_DEPTH_DB)
        return redis_url(QUEUE_DEPTH_DB)
    return RABBITMQ_URL


def test_queue_depths_count_what_waits_on_the_configured_broker(broker_url):
    # Queues of this test only: the broker may be shared with other test runs.
    waiting, empty, never_used = (f"depth-{uuid.uuid4().hex[:10]}-{n}" for n in range(3))
    publish(broker_url, Queue(waiting), 3)  # durable, as Celery declares its queues
    publish(broker_url, Queue(empty), 0)
    try:
        depths = queue_depths(Settings(broker_url=broker_url), names=(waiting, empty, never_used))
        assert depths == {waiting: 3, empty: 0, never_used: 0}
    finally:
        delete_queues(broker_url, [waiting, empty])


def test_status_shows_the_rabbitmq_queues_not_in_process(embedded, capsys, monkeypatch):
    from workers.cli import main

    monkeypatch.setattr(embedded.deps, "settings", dataclasses.replace(embedded.deps.settings, broker_url=RABBITMQ_URL))
    assert main(["status"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert "in-process" not in first_line
    counts = dict(part.split("=") for part in first_line.split("queues: ")[1].split(", "))
    assert set(counts) == {"xero", "zoho", "maintenance"} and all(n.isdigit() for n in counts.values())


def test_a_backfill_step_holds_back_while_the_zoho_queue_on_rabbitmq_is_backed_up(embedded, monkeypatch):
    from connector import queues
    from connector.sandbox.xero_seed import seed_demo_org
    from workers.backfill_tasks import MAX_ZOHO_BACKLOG, backfill_step_task

    deps, cid = embedded.deps, embedded.connection_id
    monkeypatch.setattr(deps, "settings", dataclasses.replace(deps.settings, broker_url=RABBITMQ_URL))
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=5)
    [checkpoint] = deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=None)
    zoho = Queue(queues.ZOHO_QUEUE)
    publish(RABBITMQ_URL, zoho, MAX_ZOHO_BACKLOG + 1)  # pushes waiting for the workers
    try:
        assert backfill_step_task.apply(args=[cid, "contacts", checkpoint.version]).result == "backlog"
        assert embedded.xero.calls(path_prefix="/api.xro/2.0/Contacts") == []  # no page listed meanwhile
    finally:
        with Connection(RABBITMQ_URL) as connection:
            zoho(connection.channel()).purge()
    assert backfill_step_task.apply(args=[cid, "contacts", checkpoint.version]).result == "page"
