"""`connector run`: receiver, worker and beat from one command, on the real Redis and PostgreSQL
(and, asked for explicitly, on the embedded default); one signed webhook synced; SIGTERM stops it all."""

from __future__ import annotations

import os
import signal

import pytest

from connector.store import audit as stages
from tests.processes import free_port, wait_for_http
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_connector_run_syncs_a_webhook_on_redis_and_postgresql_and_stops_on_sigterm(deployment):
    # No release step: `connector run` brings the schema up itself before starting anything.
    port = free_port()
    run = deployment.start("run", f"connector run --port {port}")
    base = f"http://127.0.0.1:{port}"
    assert wait_for_http(f"{base}/healthz", timeout=90, process=run).status_code == 200, run.tail(4000)
    deployment.connect()

    xero = deployment.xero
    contact_id = xero.create_contact(deployment.tenant_id, Name="One Process Ltd")["ContactID"]
    assert wait_until(lambda: set(xero.deliver_webhooks(f"{base}/webhooks/xero")) == {200}
                      and not xero.pending_events(), timeout=30)
    assert wait_until(lambda: deployment.latest_stage("contact", contact_id) == stages.WRITTEN, timeout=90), \
        run.tail(4000)
    assert [a["Account_Name"] for a in deployment.zoho.records("Accounts")] == ["One Process Ltd"]
    services = {line.get("service") for line in run.json_lines()}
    assert {"run", "web", "worker", "beat"} <= services, services

    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0, run.tail(4000)
    # Nothing it started outlives it (the children run in their own process groups).
    children = [line["pids"] for line in run.json_lines() if line.get("message") == "run.started"][0]
    assert wait_until(lambda: all(group_gone(pid) for pid in children.values()), timeout=10), children
    assert "run.stopped" in run.output()


def test_connector_run_without_redis_refuses_unless_embedded_is_asked_for(deployment, tmp_path):
    env = {k: v for k, v in deployment.env.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")}
    deployment.env = env
    result = deployment.run(f"connector run --port {free_port()}", timeout=60)
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "CONNECTOR_EMBEDDED=1" in result.stderr
    assert "Traceback" not in result.stderr

    # Embedded, on purpose: one process, SQLite in the data dir; the webhook still reaches Zoho.
    port = free_port()
    deployment.env["CONNECTOR_EMBEDDED"] = "1"
    run = deployment.start("run-embedded", f"connector run --port {port}")
    base = f"http://127.0.0.1:{port}"
    assert wait_for_http(f"{base}/healthz", timeout=60, process=run).status_code == 200, run.tail(4000)
    deployment.connect()  # the same SQLite database and vault key, from this process
    xero = deployment.xero
    contact_id = xero.create_contact(deployment.tenant_id, Name="Embedded Ltd")["ContactID"]
    assert set(xero.deliver_webhooks(f"{base}/webhooks/xero")) == {200}
    assert wait_until(lambda: deployment.latest_stage("contact", contact_id) == stages.WRITTEN, timeout=60), \
        run.tail(4000)
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(timeout=30) == 0, run.tail(4000)
    assert (tmp_path / "data" / "connector.db").exists()
