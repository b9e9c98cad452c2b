"""The Procfile as a PaaS runs it: release, then web, worker, beat and flower from their command
lines, on the real Redis and PostgreSQL, processing one signed Xero webhook end to end; every JSON
log line of that webhook's sync carries its sync_id (tests/deploy/sync_log_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from connector.store import audit as stages
from tests.deploy.conftest import FLOWER_AUTH
from tests.processes import free_port, procfile, wait_for_http
from tests.deploy.sync_log_checks import assert_every_line_of_the_sync_carries_its_sync_id
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


def test_the_procfile_processes_sync_a_signed_webhook_and_each_log_line_of_it_carries_its_sync_id(deployment):
    commands = procfile()
    assert set(commands) >= {"release", "web", "worker", "beat", "flower"}

    release = deployment.run(commands["release"])
    assert release.returncode == 0, release.stderr
    deployment.connect()

    web_port, flower_port = free_port(), free_port()
    web = deployment.start("web", commands["web"], PORT=str(web_port))
    worker = deployment.start("worker", commands["worker"])
    beat = deployment.start("beat", commands["beat"])
    flower = deployment.start("flower", commands["flower"], PORT=str(flower_port))

    base = f"http://127.0.0.1:{web_port}"
    assert wait_for_http(f"{base}/healthz", timeout=60, process=web).status_code == 200
    assert wait_until(lambda: any("ready" in line.get("message", "") for line in worker.json_lines())
                      or not worker.alive(), timeout=60), worker.tail(4000)
    assert worker.alive(), worker.tail(4000)

    xero = deployment.xero
    contact = xero.create_contact(deployment.tenant_id, Name="Procfile Pty Ltd", EmailAddress="ap@procfile.example")
    assert xero.intent_to_receive(f"{base}/webhooks/xero").ok
    assert set(xero.deliver_webhooks(f"{base}/webhooks/xero")) == {200}
    contact_id = contact["ContactID"]
    assert wait_until(lambda: deployment.latest_stage("contact", contact_id) == stages.WRITTEN, timeout=90), \
        (deployment.deps.store.audit.trail(deployment.connection_id, "contact", contact_id), worker.tail(4000))
    [account] = [a for a in deployment.zoho.records("Accounts") if a["Account_Name"] == "Procfile Pty Ltd"]

    # Beat runs and schedules its jobs on the same broker.
    assert wait_until(lambda: "beat: Starting..." in beat.output() or not beat.alive(), timeout=30), beat.output()
    assert beat.alive(), beat.tail(4000)

    # Flower answers, only with the credentials of FLOWER_BASIC_AUTH.
    flower_url = f"http://127.0.0.1:{flower_port}/"
    assert wait_for_http(flower_url, timeout=60, process=flower).status_code == 401
    assert requests.get(flower_url, auth=FLOWER_AUTH, timeout=5).status_code == 200
    assert requests.get(flower_url, auth=(FLOWER_AUTH[0], "wrong"), timeout=5).status_code == 401

    # gunicorn's access log is on, with the path and never the query string (OAuth codes travel there).
    requests.get(f"{base}/healthz?code=should-not-be-logged", timeout=5)
    assert wait_until(lambda: any(line.get("path") == "/healthz" for line in web.json_lines()), timeout=10), \
        web.tail(3000)
    assert "should-not-be-logged" not in web.output()
    assert any(line.get("path") == "/webhooks/xero" and str(line.get("status")) == "200" for line in web.json_lines())

    # One logging setup for every process: each one's lines are JSON, stamped with the process.
    for process in (web, worker, beat, flower):
        assert process.name in {line.get("service") for line in process.json_lines()}, process.tail(2000)
    for process in (web, worker, beat, flower):
        assert process.alive(), f"{process.name} exited:\n{process.tail(3000)}"
        assert process.stop(whole_group=True) in (0, -15, 143), \
            f"{process.name} did not stop cleanly:\n{process.tail(3000)}"
    assert account["Account_Name"] == "Procfile Pty Ltd"
    assert_every_line_of_the_sync_carries_its_sync_id(deployment, web, worker, contact_id)


def test_flower_refuses_to_start_without_basic_auth(deployment):
    env = {k: v for k, v in deployment.env.items() if k != "FLOWER_BASIC_AUTH"}
    result = deployment.run(f"env -u FLOWER_BASIC_AUTH PORT={free_port()} {procfile()['flower']}", timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "FLOWER_BASIC_AUTH" in lines[0], result.stderr
    assert "FLOWER_BASIC_AUTH" not in env


def test_beat_keeps_its_schedule_file_in_the_data_dir_not_in_the_working_directory(deployment):
    release = deployment.run(procfile()["release"])
    assert release.returncode == 0, release.stderr
    data_dir = Path(deployment.env["CONNECTOR_DATA_DIR"]) / "beat"
    beat = deployment.start("beat", procfile()["beat"], CONNECTOR_DATA_DIR=str(data_dir))  # not made yet: beat makes it
    assert wait_until(lambda: list(data_dir.glob("celerybeat-schedule*")) or not beat.alive(), timeout=60), \
        beat.tail(4000)
    assert beat.alive(), beat.tail(4000)
    assert not list(deployment.workdir.glob("celerybeat-schedule*"))
