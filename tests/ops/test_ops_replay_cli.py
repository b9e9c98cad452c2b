"""`connector replay` on the embedded default runs the replay here and reports its outcome (a queued
task would wait for a worker that never comes); `connector failures` prints what failed and why."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import InvalidArgument
from connector.replay import parse_since, resource_of
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import audit as stages
from workers.cli import main
from workers.demo import connect_sandbox_tenant
from workers.xero_tasks import ingest_xero_events


@pytest.mark.parametrize("spelling, resource", [
    ("contact", "contacts"), ("Contacts", "contacts"), ("invoice", "invoices"), ("credit-notes", "creditnotes"),
    ("CreditNote", "creditnotes"), ("credit_note", "creditnotes"), ("payment", "payments"),
])
def test_record_type_accepts_singular_and_plural_spellings(spelling, resource):
    assert resource_of(spelling) == resource


@pytest.mark.parametrize("bad", ["widget", "", None, 3, ["contact"]])
def test_a_bad_record_type_says_what_is_accepted(bad):
    with pytest.raises(InvalidArgument, match=r"record must be one of contact\(s\), invoice\(s\)"):
        resource_of(bad)


def test_since_takes_durations_and_iso_dates():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("2026-11-01", now=now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidArgument, match="since must be a duration like 24h"):
        parse_since("yesterday", now=now)


def test_replay_runs_in_process_on_the_embedded_default_and_reports_the_outcome(embedded, capsys):
    contact = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=1)[0]
    cid = str(embedded.connection_id)

    assert main(["replay", cid, "contact", contact]) == 0
    assert "1 written, 0 unchanged, 0 failed" in capsys.readouterr().out
    assert "queued" not in capsys.readouterr().out
    trail = [e.stage for e in embedded.deps.store.audit.trail(embedded.connection_id, "contact", contact)]
    assert trail == [stages.RECEIVED, stages.FETCHED, stages.MAPPED, stages.WRITTEN]

    writes = embedded.zoho_writes()
    assert main(["replay", cid, "contacts", contact, "--source", "snapshot"]) == 0
    assert "0 written, 1 unchanged, 0 failed" in capsys.readouterr().out
    assert embedded.zoho_writes() == writes  # already in Zoho: nothing written


def test_replay_refuses_bad_arguments_with_one_clear_line(embedded, capsys):
    assert main(["replay", str(embedded.connection_id), "widget", "x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "replay: record must be one of contact(s), invoice(s), credit-note(s) / creditnote(s), payment(s); "
        "got 'widget'")
    assert main(["replay", "42", "contact", "x"]) == 2
    assert "there is no connection #42" in capsys.readouterr().err
    assert main(["replay", str(embedded.connection_id), "contact"]) == 2
    assert "needs RECORD and at least one ID, or --failed" in capsys.readouterr().err


def test_failures_lists_what_failed_why_and_attempts_and_replay_failed_clears_them(embedded, capsys):
    audit = embedded.deps.store.audit
    contact = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=1)[0]
    for stage, detail in [(stages.RETRYING, {"reason": "Zoho 503", "attempt": 1}),
                          (stages.FAILED, {"reason": "Zoho 503 again", "error": "TransientError", "attempts": 2})]:
        audit.record(connection_id=embedded.connection_id, record_type="contact", record_id=contact, stage=stage,
                     detail=detail)

    assert main(["failures"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if contact in row)
    assert "TransientError" in line and "Zoho 503 again" in line and line.split()[-4] == "2"
    assert main(["failures", "--error", "NotFound"]) == 0
    assert capsys.readouterr().out.strip() == "no failures"

    assert main(["replay", str(embedded.connection_id), "--failed", "--error", "transienterror"]) == 0
    assert "1 written" in capsys.readouterr().out
    assert main(["failures", str(embedded.connection_id)]) == 0
    assert capsys.readouterr().out.strip() == "no failures"


def _failures_json(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["failures", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _status_failures(capsys, connection_id: int) -> dict:
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    return next(c for c in json.loads(capsys.readouterr().out)["connections"] if c["id"] == connection_id)[
        "failures_24h"]


def _unknown_tenant_failures(audit, tenant_id: str, record_ids: list[str]) -> None:
    """The rows an earlier release wrote for a webhook of a tenant not connected yet (today such ids are held
    and fetched on connect): a connection-less failure naming the tenant. Databases upgraded from it hold them."""
    trail = audit.batch()
    for record_id in record_ids:
        trail.record(record_type="contact", record_id=record_id, stage=stages.FAILED,
                     detail={"reason": "no connection for this Xero tenant", "error": "UnknownTenant",
                             "tenant_id": tenant_id, "event_type": "UPDATE"})
    trail.flush()


def test_early_webhook_failures_of_an_older_release_are_the_tenants_until_its_backfill_writes_them(embedded, capsys):
    """Failures, replay --failed and status agree: first on the 25 early-webhook failures of the new connection
    (however many of another tenant came later), then, once the backfill wrote them, on none."""
    xero, deps = embedded.xero, embedded.deps
    early_tenant = xero.add_tenant("Early Ltd")
    early = seed_demo_org(xero, early_tenant, contacts=25)
    _unknown_tenant_failures(deps.store.audit, early_tenant, early)
    _unknown_tenant_failures(deps.store.audit, "tenant-nobody-connected", [f"c-{n}" for n in range(250)])
    later, _ = connect_sandbox_tenant(deps, embedded.sandboxes, "Early Ltd", tenant_id=early_tenant)

    listed = _failures_json(capsys, str(later))
    assert sorted(f["record_id"] for f in listed) == sorted(early)
    assert {(f["connection"], f["error"]) for f in listed} == {(None, "UnknownTenant")}
    assert _status_failures(capsys, later) == {"UnknownTenant": 25}
    assert len(_failures_json(capsys, "--limit", "1000")) == 275
    assert main(["failures", "--limit", "274"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("the newest 274 failed (more with a higher --limit)")
    assert main(["failures", "--limit", "275"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("275 failed; replay them")

    assert main(["backfill", str(later), "--resources", "contacts"]) == 0
    assert _failures_json(capsys, str(later)) == []
    assert _status_failures(capsys, later) == {}
    assert main(["replay", str(later), "--failed"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to replay: no failures match"
    assert {f["tenant_id"] for f in _failures_json(capsys, "--limit", "1000")} == {"tenant-nobody-connected"}


def test_webhooks_before_the_tenant_was_connected_are_held_not_failures(embedded, capsys):
    """Today's path for the same deliveries: nothing is listed as failed, before or after the tenant connects."""
    xero, deps = embedded.xero, embedded.deps
    early_tenant = xero.add_tenant("Held Ltd")
    seed_demo_org(xero, early_tenant, contacts=5)
    ingest_xero_events.apply(args=[xero.pending_events()])
    assert _failures_json(capsys, "--limit", "1000") == []
    later, _ = connect_sandbox_tenant(deps, embedded.sandboxes, "Held Ltd", tenant_id=early_tenant)
    assert _failures_json(capsys, str(later)) == []
    assert _status_failures(capsys, later) == {}


def test_audit_shows_a_run_of_retries_as_one_line_with_its_count(embedded, capsys):
    audit, cid = embedded.deps.store.audit, embedded.connection_id
    for attempt in (1, 2, 3):
        audit.record(connection_id=cid, record_type="contact", record_id="c-1", stage=stages.RETRYING,
                     detail={"reason": "Xero 429", "attempt": attempt})

    assert main(["audit", str(cid), "contact", "c-1"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "retrying  x3 (last " in line and "'attempt': 1" in line


def test_failures_refuses_a_limit_below_one_with_one_clear_line(embedded, capsys):
    assert main(["failures", "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == "failures: --limit must be at least 1; got 0"
