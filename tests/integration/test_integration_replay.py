"""Replays as an operator runs them: `celery -A workers.app call connector.replay ...` against a real
worker process, on the real Redis broker, PostgreSQL and the sandboxes; `connector failures` lists
what failed first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from tests.conftest import sandbox_env, stop_celery_worker
from tests.picture.test_picture_refusals import RefusingZoho
from workers.embedded import wait_until

pytestmark = pytest.mark.integration


def celery_call(env: dict, task: str, kwargs: dict) -> str:
    """What an operator types: the celery CLI publishing a task by name, with JSON kwargs."""
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", "call", task,
                           "--kwargs", json.dumps(kwargs)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()  # the task id


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_replay_of_a_succeeded_a_dead_lettered_and_a_failed_record_through_celery_call(make_system):
    import os

    zoho = RefusingZoho()
    system = make_system(zoho=zoho)
    xero, deps, connection_id = system.xero, system.deps, system.connection_id
    audit = deps.store.audit
    env = {**os.environ, **sandbox_env(
        database_url=deps.settings.database_url, data_dir=deps.settings.data_dir,
        vault_keys=deps.settings.vault_keys.reveal(), xero=xero, xero_url=xero.base_url, zoho=zoho,
        zoho_url=zoho.base_url)}

    succeeded, dead = seed_demo_org(xero, system.tenant_id, contacts=2)
    zoho.refuse = {dead: ["DUPLICATE_DATA", 1]}  # refused once, for a reason no retry fixes
    assert set(xero.deliver_webhooks(system.hook_url)) == {200}
    assert wait_until(lambda: audit.latest_stage(connection_id, "contact", succeeded) == stages.WRITTEN
                      and audit.latest_stage(connection_id, "contact", dead) == stages.FAILED, timeout=60)

    # `connector failures` shows it, with why and how many attempts.
    listed = cli(env, "failures", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["record_id"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {dead}
    assert rows[dead]["error"] == "DUPLICATE_DATA" and rows[dead]["connection"] == connection_id
    assert rows[dead]["attempts"] == 1 and "refused" in rows[dead]["reason"]
    table = cli(env, "failures", str(connection_id), "--since", "1h")
    assert dead in table.stdout and "DUPLICATE_DATA" in table.stdout

    # 1. The record that succeeded: replayed (singular spelling), re-fetched, and nothing written to Zoho.
    zoho_writes = len(zoho.calls(path_prefix="/crm/v8", method="POST")) + len(zoho.calls(method="PUT"))
    celery_call(env, "connector.replay", {"connection": connection_id, "record": "contact", "ids": [succeeded]})
    assert wait_until(lambda: [e.stage for e in audit.trail(connection_id, "contact", succeeded)][-4:]
                      == [stages.RECEIVED, stages.FETCHED, stages.MAPPED, stages.SKIPPED], timeout=60)
    assert len(zoho.calls(path_prefix="/crm/v8", method="POST")) + len(zoho.calls(method="PUT")) == zoho_writes

    # 2. The dead-lettered record, once its cause is gone (plural spelling): written.
    celery_call(env, "connector.replay", {"connection": connection_id, "record": "Contacts", "ids": [dead]})
    assert wait_until(lambda: audit.latest_stage(connection_id, "contact", dead) == stages.WRITTEN, timeout=60)
    link = deps.store.links.get(connection_id, "contact", dead)
    assert zoho.record("Accounts", link.zoho_id)["Xero_Contact_ID"] == dead

    # A bad argument: a one-line refusal in the worker log, no traceback, nothing replayed.
    celery_call(env, "connector.replay", {"connection": connection_id, "record": "widget", "ids": [succeeded]})
    celery_call(env, "connector.replay", {"connection": 99, "record": "contact", "ids": [succeeded]})
    trail_before = len(audit.trail(connection_id, "contact", succeeded))
    output = stop_celery_worker(system.worker)
    assert "replay.refused: record must be one of contact(s)" in output, output
    assert "replay.refused: there is no connection #99" in output, output
    assert "Traceback" not in output, output
    assert len(audit.trail(connection_id, "contact", succeeded)) == trail_before

