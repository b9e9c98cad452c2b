"""`connector replay` re-fetches through the same task a webhook uses, behind webhook work."""

import json

from kombu import Connection

from connector.pipeline.xero_in import PRIORITY_REPLAY
from connector.settings import Settings
from connector.store import audit as stages
from workers.app import app
from workers.deps import configure
from workers.maintenance_tasks import replay


def test_replay_audits_received_and_queues_a_fetch_at_replay_priority(tmp_path):
    deps = configure(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    connection = deps.store.connections.create(name="Replay Ltd", xero_tenant_id="tenant-replay")
    app.conf.update(broker_url="memory://")
    with Connection("memory://") as conn:
        conn.SimpleQueue("xero").clear()  # other tests may have left messages in the in-process broker

    assert replay.apply(args=[connection.id, "invoices", ["inv-1", "inv-2"]]).result == 2

    with Connection("memory://") as conn:
        message = conn.SimpleQueue("xero").get(timeout=2)
        args = json.loads(message.body)[0] if isinstance(message.body, (str, bytes)) else message.body[0]
        message.ack()
    assert message.headers["task"] == "connector.fetch_xero_records"
    connection_id, resource, ids, sync_ids, priority = args
    assert (connection_id, resource, ids, priority) == (connection.id, "invoices", ["inv-1", "inv-2"], PRIORITY_REPLAY)
    trail = deps.store.audit.trail(connection.id, "invoice", "inv-1")
    assert [e.stage for e in trail] == [stages.RECEIVED] and trail[0].sync_id == sync_ids["inv-1"]
