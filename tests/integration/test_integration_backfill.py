"""A backfill interrupted by SIGKILL (the whole prefork worker, as the Procfile starts it) and resumed
with the same command: no page that was finished is listed again, and nothing reaches Zoho twice.
A dry run on the shared governor (Redis) waits for the minute window as the backfill does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from connector.clock import SYSTEM_CLOCK, ManualClock
from connector.mapping import zoho_fields
from connector.sandbox.xero_seed import seed_demo_org
from tests.conftest import sandbox_env, stop_celery_worker
from tests.integration.conftest import broker_idle
from workers.cli import main
from workers.embedded import wait_until, wait_until_quiet

pytestmark = pytest.mark.integration


def prefork_worker(env: dict) -> subprocess.Popen:
    """The Procfile's worker command, in its own process group so the kill takes its children too."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "xero,zoho,maintenance",
         "--concurrency", "2", "--loglevel", "WARNING", "-n", f"backfill-{os.getpid()}-{len(env)}@%h"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def list_calls(xero) -> int:
    return sum(1 for r in xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET") if "pageSize" in r.query)


def test_backfill_killed_mid_way_resumes_without_duplicates_or_refetching_finished_pages(make_system):
    system = make_system()
    xero, zoho, deps, cid = system.xero, system.zoho, system.deps, system.connection_id
    stop_celery_worker(system.worker)  # this test runs its own prefork workers
    env = {**os.environ, **sandbox_env(
        database_url=deps.settings.database_url, data_dir=deps.settings.data_dir,
        vault_keys=deps.settings.vault_keys.reveal(), xero=xero, xero_url=xero.base_url, zoho=zoho,
        zoho_url=zoho.base_url)}
    contacts = seed_demo_org(xero, system.tenant_id, contacts=2200)  # three pages
    command = [sys.executable, "-m", "workers.cli", "backfill", str(cid), "--resources", "contacts", "--detach"]

    first = prefork_worker(env)
    try:
        assert subprocess.run(command, env=env, capture_output=True, text=True, timeout=60).returncode == 0
        assert wait_until(lambda: (deps.store.backfills.get(cid, "contacts").pages >= 1), timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finished_before = deps.store.backfills.get(cid, "contacts").pages
    calls_before = list_calls(xero)
    assert deps.store.backfills.get(cid, "contacts").state == "running" and finished_before < 3

    second = prefork_worker(env)
    try:
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert wait_until(lambda: deps.store.backfills.get(cid, "contacts").state == "done", timeout=180)
        assert wait_until_quiet(lambda: (len(zoho.records("Accounts")), broker_idle(deps)), quiet_for=3, timeout=180)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)

    checkpoint = deps.store.backfills.get(cid, "contacts")
    # After the restart, only the pages not yet finished were listed (the one in flight at most again).
    assert list_calls(xero) - calls_before == checkpoint.pages - finished_before
    assert calls_before <= finished_before + 1
    xero_ids = [a[zoho_fields.ACCOUNT_XERO_ID] for a in zoho.records("Accounts")]
    assert len(xero_ids) == len(set(xero_ids))  # no duplicate in Zoho
    assert set(xero_ids) <= set(contacts)
    assert len(deps.store.snapshots.get_many(cid, "contacts", contacts)) == len(contacts)


def test_dry_run_waits_for_the_minute_window_of_the_shared_governor_and_completes(make_system, capsys):
    clock = ManualClock(SYSTEM_CLOCK.now())  # the dry run sleeps on it; the sandbox counts its minute on it
    system = make_system(clock=clock, env={"XERO_MINUTE_LIMIT": "4"})  # a backfill's share: 3 calls a minute
    xero, deps, cid, tenant_id = system.xero, system.deps, system.connection_id, system.tenant_id
    seed_demo_org(xero, tenant_id, contacts=4500)  # five pages
    capsys.readouterr()

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["create"] == {"contacts": 4500} and report["xero_calls"] == 5
    assert "Traceback" not in captured.err
    calls = [r for r in xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET") if "pageSize" in r.query]
    assert len(calls) == 5 and all(call.status == 200 for call in calls)
    starts = [call.started for call in calls]
    assert max(sum(start <= t < start + 60 for t in starts) for start in starts) <= 3
    assert deps.governor.usage(tenant_id)["day_used_by_dry_runs"] == 5
