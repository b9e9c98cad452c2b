"""The console's "Connect and fit" pages and the Connections page's sparklines, through Flask's test client on
the embedded system; the sparkline renderer on its own (numbers in, SVG out)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from datetime import timedelta

from connector.activity_charts import HOURS, activity_24h, hour_slots, sparkline_svg
from connector.fit_report import FitReports, backfill_progress
from connector.store import audit as stages
from tests.console.console_kit import ADMIN_TOKEN, basic, console_app, csrf_of, failed_contact, synced_invoice
from workers.app import app as celery_app
from workers.console_tasks import fit_check

SVG = "{http://www.w3.org/2000/svg}"


def _points(svg: str) -> list[tuple[float, float]]:
    polyline = ElementTree.fromstring(svg).find(f"{SVG}polyline")
    return [tuple(float(n) for n in pair.split(",")) for pair in polyline.get("points").split()]


def test_a_sparkline_scales_its_points_to_the_largest_value_and_names_what_it_shows():
    svg = sparkline_svg([0, 5, 10, 5], label="Records synced per hour", width=100, height=30)
    root = ElementTree.fromstring(svg)
    assert root.get("width") == "100" and root.get("height") == "30" and root.get("role") == "img"
    xs, ys = zip(*_points(svg))
    assert xs[0] == 2.0 and xs[-1] == 98.0 and list(xs) == sorted(xs)
    assert ys[0] == 28.0 and ys[2] == 2.0 and ys[1] == ys[3] == 15.0  # 0 at the bottom, the largest at the top
    circle = root.find(f"{SVG}circle")
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (98.0, 15.0)  # the newest value
    assert root.find(f"{SVG}title").text == ("Records synced per hour: 20 in all, 5 in the last hour, at most 10 "
                                             "an hour")


def test_a_sparkline_of_nothing_is_a_flat_line_and_its_label_is_text_not_markup():
    svg = sparkline_svg([0] * HOURS, label='<script>alert("x")</script>')
    assert "<script>" not in svg
    root = ElementTree.fromstring(svg)  # well-formed: the label was escaped
    assert root.find(f"{SVG}title").text.startswith('<script>alert("x")</script>: 0 in all')
    assert {y for _, y in _points(svg)} == {34.0} and len(_points(svg)) == HOURS


def test_activity_counts_written_and_failed_rows_per_hour_within_the_last_24_hours(system):
    store, now = system.deps.store, system.deps.store.clock.now()
    slots = hour_slots(now)
    rows = []
    for hours_ago, stage in ((0, stages.WRITTEN), (0, stages.WRITTEN), (3, stages.FAILED), (3, stages.WRITTEN),
                             (25, stages.WRITTEN), (1, stages.FETCHED)):
        row = store.audit.row(connection_id=system.connection_id, record_type="contact", record_id=f"c{len(rows)}",
                              stage=stage)
        row["created_at"] = now - timedelta(hours=hours_ago)
        rows.append(row)
    other = store.audit.row(connection_id=system.connection_id + 1, record_type="contact", record_id="x",
                            stage=stages.FAILED)
    store.audit.write_rows([*rows, other])

    [activity] = activity_24h(store, system.deps.budget_ledger, [system.connection_id], now).values()
    assert len(activity.records_synced) == len(activity.failures) == len(activity.xero_calls) == HOURS
    assert activity.records_synced[-1] == 2 and activity.records_synced[-4] == 1
    assert sum(activity.records_synced) == 3  # 25 hours ago is out of the window, "fetched" is no sync
    assert activity.failures[-4] == 1 and sum(activity.failures) == 1  # another connection's is not ours
    assert slots[-1] <= now.replace(tzinfo=None) < slots[-1] + timedelta(hours=1)


def test_the_connections_page_draws_the_last_24_hours_from_the_audit_trail_and_the_budget_ledger(console):
    client, system = console
    synced_invoice(system)
    failed_contact(system, "Broken Ltd")
    page = client.get("/console/", headers=basic()).data.decode()
    section = page[page.index(f'id="connection-{system.connection_id}"'):]
    synced = system.deps.store.audit.count(stages.WRITTEN)
    calls = sum(system.deps.budget_ledger.calls_by_purpose(system.connection_id).values())
    assert synced >= 2 and calls >= 1
    assert f"Records synced per hour: <strong>{synced}</strong>" in section
    assert "Failures per hour: <strong>1</strong>" in section
    assert f"Xero calls per hour: <strong>{calls}</strong>" in section
    assert section.count("<svg") == 3 and "<polyline" in section


def test_the_connect_page_refuses_without_the_admin_token_and_shows_the_steps(console):
    client, system = console
    for path in ("/console/connect", f"/console/connect/{system.connection_id}/backfill",
                 f"/console/connect/{system.connection_id}/backfill/progress.json"):
        assert client.get(path).status_code == 401, path
    page = client.get("/console/connect", headers=basic()).data.decode()
    assert "Connect Xero" in page and "Connect Zoho" in page and "Fit report" in page
    # This receiver has no OAuth flows configured: the page says so and gives the command.
    assert "connector connect xero" in page and 'action="/oauth/xero/start"' not in page
    assert "Not checked yet" in page and 'action="/console/connect/' in page


def test_check_fit_queues_the_check_and_the_page_shows_the_stored_report(console):
    client, system = console
    synced_invoice(system)
    page = client.get("/console/connect", headers=basic()).data.decode()
    path = f"/console/connect/{system.connection_id}/check"
    assert client.post(path, data={"csrf_token": "forged"}, headers=basic()).status_code == 403
    answer = client.post(path, data={"csrf_token": csrf_of(page)}, headers=basic())
    assert answer.status_code == 303 and f"checking={system.connection_id}" in answer.headers["Location"]
    with celery_app.connection_for_read() as connection:
        message = connection.SimpleQueue("maintenance", no_ack=True).get(timeout=2)
    assert message.headers["task"] == "connector.fit_check" and message.payload[0] == [system.connection_id]

    waiting = client.get(answer.headers["Location"], headers=basic()).data.decode()
    assert 'http-equiv="refresh"' in waiting and "Checking" in waiting

    assert fit_check(system.connection_id) == "checked"  # what the worker runs
    report = FitReports(system.deps.redis).load(system.connection_id)
    assert report["size"]["records"]["contacts"] == 1 and report["size"]["records"]["invoices"] == 1
    page = client.get(answer.headers["Location"], headers=basic()).data.decode()
    assert 'http-equiv="refresh"' not in page  # the report is newer than the request: no more waiting
    fit = page[page.index(f'id="fit-{system.connection_id}"'):]
    assert re.search(r"<strong>2</strong> records in Xero: contacts 1, invoices 1", fit)
    assert f"{report['size']['backfill']['xero_calls']} Xero calls, 1 day(s)" in fit
    assert "Xero day limit" in fit and "edition:" in fit and "Start the backfill" in fit
    assert report["organisation"]["plan"] == "Standard" and report["currencies"]["xero"] == "NZD"
    assert "<strong>Standard</strong>; base currency <strong>NZD</strong>; country NZ" in fit
    # The embedded system's Zoho grant predates ZohoCRM.org.READ: the page says so and what to do.
    assert "OAUTH_SCOPE_MISMATCH" in report["currencies"]["zoho_error"] and "connecting Zoho again grants it" in fit
    # Neither the page nor the stored report (in Redis) carries a client secret, a token or the admin token.
    secrets = [system.xero.client_secret, system.zoho.client_secret, ADMIN_TOKEN]
    for vendor in ("xero", "zoho"):
        tokens = system.deps.credentials.load(system.deps.credentials.owner_of(system.connection_id, vendor),
                                              vendor).tokens
        secrets += [tokens.access_token.reveal(), tokens.refresh_token.reveal()]
    stored = json.dumps(report)
    assert [s[:4] for s in secrets if s and (s in page or s in stored)] == []


def test_the_fit_report_of_a_xero_consent_without_the_settings_scope_says_to_reconnect_for_the_plan(console):
    from datetime import datetime, timedelta, timezone

    from connector.secret import Secret
    from connector.store.credentials import TokenSet

    client, system = console
    before = "offline_access accounting.contacts accounting.transactions"  # as consented before the scope was asked
    grant = system.xero.issue_grant([system.tenant_id], scope=before)
    system.deps.credentials.save(system.connection_id, "xero", TokenSet(
        access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=1800), scope=before))

    assert fit_check(system.connection_id) == "checked"
    report = FitReports(system.deps.redis).load(system.connection_id)
    assert report["xero"]["ok"] and report["organisation"] == {
        "read": False, "note": "reconnect Xero to show the plan and base currency"}
    page = client.get("/console/connect", headers=basic()).data.decode()
    fit = page[page.index(f'id="fit-{system.connection_id}"'):]
    assert "reconnect Xero to show the plan and base currency" in fit and "; base currency <strong>" not in fit
    assert "records in Xero" in fit  # the rest of the report stands


def test_start_backfill_queues_it_refuses_an_inactive_connection_and_serves_its_progress(console):
    client, system = console
    cid = system.connection_id
    page = client.get("/console/connect", headers=basic()).data.decode()
    assert client.get(f"/console/connect/{cid}/backfill/progress.json", headers=basic()).json == {
        "connection": cid, "state": "not started"}
    answer = client.post(f"/console/connect/{cid}/backfill", data={"csrf_token": csrf_of(page)}, headers=basic())
    assert answer.status_code == 303 and answer.headers["Location"].startswith(f"/console/connect/{cid}/backfill?")
    with celery_app.connection_for_read() as connection:
        message = connection.SimpleQueue("maintenance", no_ack=True).get(timeout=2)
    assert message.headers["task"] == "connector.start_backfill" and message.payload[0] == [cid]
    queued = client.get(answer.headers["Location"], headers=basic()).data.decode()
    assert "Queued" in queued and 'http-equiv="refresh"' in queued

    system.deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=None)  # as the task starts it
    progress = client.get(f"/console/connect/{cid}/backfill/progress.json", headers=basic()).json
    expected = backfill_progress(system.deps, cid)
    assert {**progress, "eta": None} == {**expected, "eta": None} and progress["state"] == "running"
    assert "Running" in client.get(answer.headers["Location"], headers=basic()).data.decode()

    # A backfill queued again after this one finished: its page waits for the new run, not showing the old "done".
    [checkpoint] = system.deps.store.backfills.for_connection(cid)
    system.deps.store.backfills.advance(checkpoint, anchor=None, page=1, records=0, remaining=0, done=True)
    assert "Done" in client.get(f"/console/connect/{cid}/backfill", headers=basic()).data.decode()
    again = client.post(f"/console/connect/{cid}/backfill", data={"csrf_token": csrf_of(page)}, headers=basic())
    waiting = client.get(again.headers["Location"], headers=basic()).data.decode()
    assert "Queued" in waiting and "Done" not in waiting and 'http-equiv="refresh"' in waiting

    system.deps.store.connections.mark_needs_reauth(cid, "grant revoked")
    refused = client.post(f"/console/connect/{cid}/backfill", data={"csrf_token": csrf_of(page)}, headers=basic())
    assert refused.status_code == 409 and "needs_reauth" in refused.data.decode()
    assert client.get("/console/connect/999/backfill", headers=basic()).status_code == 404


def test_an_oauth_result_page_leads_back_into_the_console_where_the_receiver_serves_it(system, memory_broker):
    from webhooks import create_app
    from webhooks.enqueue import celery_enqueuer
    from tests.console.console_kit import ADMIN_TOKEN

    def receiver(**console):
        return create_app(webhook_key=system.xero.webhook_key, enqueue=celery_enqueuer(celery_app),
                          zoho_channels=system.deps.store.channels, admin_token=ADMIN_TOKEN,
                          oauth=system.deps.connector(), public_url="http://127.0.0.1:1", **console).test_client()

    browser = {**basic(), "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    with_console = receiver(console=console_app(system).extensions["ml_connector.console"])
    failed = with_console.get("/oauth/zoho/start", headers=browser)  # no connection named: refused, with a way on
    assert failed.status_code == 400 and 'href="/console/connect"' in failed.data.decode()
    without = receiver().get("/oauth/zoho/start", headers=browser)
    assert without.status_code == 400 and "/console/connect" not in without.data.decode()
    page = with_console.get("/console/connect", headers=basic())
    assert 'action="/oauth/xero/start"' in page.data.decode()
    # Its Connect forms redirect to Xero's sign-in (here the sandbox): the page allows that origin, no other.
    policy = page.headers["Content-Security-Policy"]
    assert f"form-action 'self' {system.settings.xero_login_url.rstrip('/')}" in policy and "*" not in policy
