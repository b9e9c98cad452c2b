"""`connector status` / collect_status after a known run, and `connector check` against the sandboxes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from connector.clock import ManualClock
from connector.pipeline import xero_in
from connector.sandbox.xero_seed import seed_demo_org
from connector.secret import Secret
from connector.settings import XERO_DEFAULT_SCOPES
from connector.status import collect_status
from connector.store import audit as stages
from connector.store.credentials import TokenSet
from connector.store.parked import DAILY_BUDGET, NEEDS_REAUTH, NOTIFY, OUTAGE, RATE_LIMITED
from workers.cli import main


def test_status_shape_and_values_after_a_known_run(embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=3)
    assert main(["replay", str(cid), "contacts", *contacts]) == 0
    capsys.readouterr()
    deps.store.audit.record(connection_id=cid, record_type="invoice", record_id="inv-9", stage=stages.FAILED,
                            detail={"reason": "Zoho refused", "error_code": "DUPLICATE_DATA"})
    deps.store.parked.park(cid, "invoices", ["inv-1", "inv-2"], reason=NEEDS_REAUTH)
    cursor = datetime(2026, 11, 1, 8, 30, tzinfo=timezone.utc)
    deps.store.poll_cursors.advance(cid, "payments", cursor)

    status = collect_status(deps)
    assert set(status) == {"generated_at", "warnings", "mode", "queues", "connections", "held_webhooks", "heartbeats",
                           "receiver_probe", "alerts"}
    assert status["mode"] == "embedded" and status["queues"] is None
    # One process: its receiver may listen anywhere but the default public URL, so it is not probed.
    assert status["receiver_probe"]["probed"] is False and status["receiver_probe"]["state"] == "not_probed"
    assert status["receiver_probe"]["reason"].startswith("embedded mode")
    [c] = status["connections"]
    assert set(c) == {"id", "name", "xero_tenant_id", "state", "state_reason", "tokens", "zoho_channels",
                      "xero_calls", "xero_budget", "zoho_credits_used", "parked", "failures_24h", "last_success",
                      "poll_cursors", "backfill", "deals_unassigned", "won_deals", "needs_review"}
    assert c["id"] == cid and c["state"] == "active" and c["xero_tenant_id"] == embedded.tenant_id
    xero_calls = len(embedded.xero.calls(path_prefix="/api.xro/2.0", tenant=embedded.tenant_id))
    assert xero_calls >= 1
    assert c["xero_calls"]["day_used"] == xero_calls
    assert c["xero_calls"]["day_left"] == 5000 - xero_calls
    assert c["xero_calls"]["day_left_for_backfill"] == 4500 - xero_calls
    budget = c["xero_budget"]
    assert budget["day_limit"] == 5000 and budget["limit_learned"]  # from the sandbox's X-DayLimit-Remaining
    assert budget["calls_24h"] == {"webhook_fetch": xero_calls}  # a replay fetches as webhook work does
    assert budget["used_today"] == xero_calls and budget["egress_bytes_24h"] > 0
    assert budget["warning"] is None and status["warnings"] == []
    assert c["tokens"]["xero"]["expires_at"] and c["tokens"]["zoho"]["expires_at"]
    assert c["parked"] == {"needs_reauth": 2, "daily_budget": 0, "rate_limited": 0, "outage": 0}
    assert c["failures_24h"] == {"DUPLICATE_DATA": 1}
    assert set(c["last_success"]) == {"contact"}
    assert c["poll_cursors"]["payments"]["modified_since"] == cursor.isoformat()
    assert c["poll_cursors"]["contacts"]["modified_since"] is None
    assert c["backfill"] is None
    assert c["won_deals"] == {"creating": 0, "created": 0, "left": 0, "waiting_for_account": 0}

    assert main(["status", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["connections"][0]["parked"] == c["parked"]
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"Xero today: {xero_calls} used by syncing, 0 by dry runs, {5000 - xero_calls} left of 5000" in text
    assert "Xero budget: limit 5000 a day (learned), projected today" in text
    assert f"last 24 h: webhook_fetch={xero_calls}" in text
    assert "receiver: not probed (embedded mode: the receiver runs in this process)" in text


def test_check_reports_each_side_ok_with_scopes_edition_and_fields(embedded, capsys):
    assert main(["check", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["xero"]["ok"] and "accounting.contacts" in result["xero"]["scopes"]
    assert result["zoho"]["ok"] and result["zoho"]["edition"].startswith("Professional")
    assert "Xero_Contact_ID" in result["zoho"]["custom_fields"]["Accounts"]


def test_check_says_what_to_do_when_the_xero_grant_is_gone(embedded, capsys):
    stored = embedded.deps.credentials.load(embedded.connection_id, "xero")
    embedded.xero.revoke(stored.tokens.refresh_token.reveal())
    embedded.xero.expire_access_tokens()
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "xero: PROBLEM" in out and "connector connect xero" in out and "zoho: ok" in out


def test_status_counts_parked_work_of_every_reason(embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    later = deps.store.clock.now() + timedelta(hours=2)
    deps.store.parked.park(cid, "invoices", ["inv-1"], reason=NEEDS_REAUTH)
    deps.store.parked.park(cid, "invoices", ["inv-2", "inv-3"], reason=DAILY_BUDGET, resume_after=later)
    deps.store.parked.park(cid, "contacts", ["c-1", "c-2", "c-3"], reason=RATE_LIMITED, resume_after=later)
    deps.store.parked.park(cid, "zoho:Accounts", ["z-1"], reason=OUTAGE, resume_after=later, stage=NOTIFY)

    [c] = collect_status(deps)["connections"]
    assert c["parked"] == {"needs_reauth": 1, "daily_budget": 2, "rate_limited": 3, "outage": 1}
    assert main(["status"]) == 0
    assert "parked: needs_reauth=1, daily_budget=2, rate_limited=3, outage=1;" in capsys.readouterr().out


def test_status_counts_a_dry_runs_xero_calls_apart_from_live_ones(embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=1200)
    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run", "--json"]) == 0  # two pages
    assert main(["replay", str(cid), "contacts", *contacts[:2]]) == 0
    capsys.readouterr()
    xero_calls = len(embedded.xero.calls(path_prefix="/api.xro/2.0", tenant=embedded.tenant_id))

    [c] = collect_status(deps)["connections"]
    assert c["xero_calls"]["day_used"] == xero_calls and c["xero_calls"]["day_used_by_dry_runs"] == 2
    assert main(["status"]) == 0
    assert f"Xero today: {xero_calls - 2} used by syncing, 2 by dry runs, {5000 - xero_calls} left of 5000" \
        in capsys.readouterr().out


def test_check_shows_the_cause_in_text_and_one_reconnect_for_connections_sharing_a_zoho_org(embedded, capsys):
    from workers.demo import Sandboxes, connect_sandbox_tenant

    deps, first = embedded.deps, embedded.connection_id
    sandboxes = Sandboxes(embedded.xero, embedded.zoho, deps.settings.xero_api_url, deps.settings.zoho_accounts_url)
    second, _ = connect_sandbox_tenant(deps, sandboxes, "Second Ops Ltd")
    deps.credentials.share(second, "zoho", first)  # as `connector connect xero --zoho-from 1` leaves it
    embedded.zoho.revoke(deps.credentials.load(first, "zoho").tokens.refresh_token.reveal())
    embedded.zoho.expire_access_tokens()

    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert out.count("zoho: PROBLEM") == 2 and out.count("xero: ok") == 2, out
    assert "invalid_code" in out, out  # the cause, not only with --json
    reconnect = f"connector connect zoho --connection {first} --connection {second}"
    assert out.count(reconnect) == 1, out  # one consent serves both connections
    assert f"connector connect zoho --connection {second}`" not in out, out


def test_status_shows_the_webhooks_held_for_organisations_not_connected_yet(make_system, capsys):
    clock = ManualClock(datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc))
    embedded = make_system(clock=clock)
    deps = embedded.deps

    def deliver(tenant_id: str, contact_ids: list[str]) -> None:
        """A signed delivery the receiver took in, reaching the ingest: held, as no connection has the tenant."""
        events = [{"resourceId": i, "tenantId": tenant_id, "eventCategory": "CONTACT", "eventType": "UPDATE",
                   "eventDateUtc": "2026-11-02T08:00:00.000", "sync_id": f"sync-{i}"} for i in contact_ids]
        with deps.store.transaction():
            xero_in.buffer_xero_events(events, connections=deps.store.connections, audit=deps.store.audit,
                                       coalescer=deps.coalescer, window=1.0, held=deps.held_xero_events)

    first_held = clock.now()
    deliver("tenant-nobody-connected", ["c1", "c2"])
    clock.advance(timedelta(hours=3))
    deliver("tenant-nobody-connected", ["c2", "c3"])
    deliver("tenant-xero-only", ["c9"])
    xero_only = deps.store.connections.create(name="Xero Only Ltd", xero_tenant_id="tenant-xero-only")

    held = collect_status(deps)["held_webhooks"]
    assert held == [
        {"xero_tenant_id": "tenant-nobody-connected", "held": 3, "since": first_held.isoformat(timespec="seconds"),
         "connection": None, "next": "connect this Xero organisation (`connector connect xero`, or "
                                     "/oauth/xero/start on the receiver), then Zoho; its held events are fetched then"},
        {"xero_tenant_id": "tenant-xero-only", "held": 1, "since": clock.now().isoformat(timespec="seconds"),
         "connection": xero_only.id, "next": f"connect Zoho for connection {xero_only.id} (`connector connect zoho --connection "
                                             f"{xero_only.id}`); its held events are fetched then"},
    ]
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["held_webhooks"] == held
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "held webhooks of Xero organisations not connected yet:" in text
    for entry in held:
        assert (f"    {entry['xero_tenant_id']}: {entry['held']} ids held since {entry['since']}; "
                f"{entry['next']}") in text, text

    # Once picked up, nothing is held and status says nothing of it.
    deps.store.connections.set_zoho(xero_only.id, org_id="org-1", api_domain="https://www.zohoapis.com")
    assert deps.held_xero_events.adopt(deps.store, [xero_only.id]) == 1
    assert [h["xero_tenant_id"] for h in collect_status(deps)["held_webhooks"]] == ["tenant-nobody-connected"]


def test_check_of_a_connection_whose_zoho_side_is_not_connected_yet_says_to_connect_it(embedded, capsys):
    tenant_id = embedded.xero.add_tenant("Xero Only Ltd")
    connection = embedded.deps.store.connections.create(name="Xero Only Ltd", xero_tenant_id=tenant_id)
    grant = embedded.xero.issue_grant([tenant_id], scope=XERO_DEFAULT_SCOPES)  # as consented now
    embedded.deps.credentials.save(connection.id, "xero", TokenSet(
        access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=int(grant["expires_in"])), scope=grant["scope"]))

    assert main(["check", str(connection.id)]) == 1
    out = capsys.readouterr().out
    assert f"zoho: PROBLEM: Zoho is not connected yet for connection {connection.id}" in out, out
    assert out.endswith(f"to do:\n  - connect Zoho: `connector connect zoho --connection {connection.id}`\n"), out
    assert "reconnect" not in out, out


def test_status_warns_when_the_day_projection_passes_80_percent(embedded, capsys):
    from types import SimpleNamespace

    deps, cid = embedded.deps, embedded.connection_id
    for remaining in range(999, 39, -1):  # 960 calls of a 1,000-call day in one hour
        deps.budget_ledger.record(SimpleNamespace(
            vendor="xero", connection_id=cid, method="GET", endpoint="/api.xro/2.0/Invoices", status=200, bytes_received=2048,
            purpose="webhook_fetch", limit_headers={"X-DayLimit-Remaining": str(remaining)}))
    deps.budget_planner.ask(cid, "payments")  # scheduled work now yields to webhook work: shown as deferred
    status = collect_status(deps)
    budget = status["connections"][0]["xero_budget"]
    assert budget["day_limit"] == 1000 and budget["used_today"] == 960
    assert budget["projected_today"] > 960 and budget["egress_bytes_24h"] == 960 * 2048
    assert budget["deferred"]["payments"]["reason"] == "live"
    assert status["warnings"] == [f"connection {cid}: {budget['warning']}"] and "80 %" in budget["warning"]
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "WARNING: projected Xero calls today" in text and "deferred payments:" in text


def test_check_lists_an_account_money_field_someone_deleted_in_zoho(embedded, capsys):
    del embedded.zoho.fields["Accounts"]["Xero_Payment_Status"]
    assert main(["check", "--json"]) == 1
    [result] = json.loads(capsys.readouterr().out)
    assert result["zoho"]["missing_fields"] == ["Accounts.Xero_Payment_Status"]
    assert "Xero_Total_Invoiced" in result["zoho"]["custom_fields"]["Accounts"]
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "zoho: missing custom fields: Accounts.Xero_Payment_Status" in out and "connector setup-zoho" in out


# -- the Xero organisation's plan and base currency (connector/xero_organisation.py) ------------------------------


def _organisation_calls(embedded, tenant_id: str) -> list:
    return embedded.xero.calls(path_prefix="/api.xro/2.0/Organisation", tenant=tenant_id)


def test_check_shows_the_xero_plan_base_currency_and_country_from_one_call_counted_as_check(embedded, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "    xero organisation: plan Standard, base currency NZD, country NZ\n" in out, out
    assert "currencies:" not in out, out  # Zoho's home currency is not read here, and nothing differs
    assert main(["check", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    organisation = result["xero"]["organisation"]
    assert organisation == {"read": True, "name": embedded.deps.store.connections.get(embedded.connection_id).name,
                            "plan": "Standard", "plan_class": "STANDARD", "base_currency": "NZD", "country": "NZ",
                            "edition": "BUSINESS", "organisation_type": "COMPANY"}
    assert result["currencies"]["xero"] == "NZD" and result["currencies"]["note"] is None
    assert len(_organisation_calls(embedded, embedded.tenant_id)) == 2  # one per check, nothing cached
    calls = embedded.deps.budget_ledger.calls_by_purpose(embedded.connection_id)
    assert calls.get("check", 0) >= 2, calls


def test_check_of_a_consent_given_before_the_settings_scope_says_to_reconnect_xero_for_the_plan(embedded, capsys):
    deps, cid, tenant = embedded.deps, embedded.connection_id, embedded.tenant_id
    before = "offline_access accounting.contacts accounting.transactions"
    grant = embedded.xero.issue_grant([tenant], scope=before)
    stored_scope = TokenSet(access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
                            expires_at=datetime.now(timezone.utc) + timedelta(seconds=1800), scope=before)
    deps.credentials.save(cid, "xero", stored_scope)

    assert main(["check"]) == 0  # a line, not a problem: the rest of the check stands
    out = capsys.readouterr().out
    assert "xero: ok" in out and "    xero organisation: reconnect Xero to show the plan and base currency\n" in out
    assert _organisation_calls(embedded, tenant) == []  # the stored scopes said so: no call made

    # A token set stored without its scopes: the call is made, and Xero's 401 AuthorizationUnsuccessful says so.
    deps.credentials.save(cid, "xero", TokenSet(access_token=stored_scope.access_token,
                                                refresh_token=stored_scope.refresh_token,
                                                expires_at=stored_scope.expires_at))
    assert main(["check", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["xero"]["ok"] and result["xero"]["organisation"] == {
        "read": False, "note": "reconnect Xero to show the plan and base currency"}
    assert [c.status for c in _organisation_calls(embedded, tenant)] == [401, 401]  # refreshed once, then said so
    assert deps.store.connections.get(cid).state == "active"  # a missing scope is no broken connection


def test_check_says_what_a_zoho_home_currency_other_than_xero_base_currency_means(embedded, capsys):
    from connector.connect import ZOHO_SCOPES
    from workers.demo import save_sandbox_grants

    deps = embedded.deps
    tenant = embedded.xero.add_tenant("Sydney Pty Ltd", base_currency="AUD", plan="STARTER", country="AU")
    connection = deps.store.connections.create(name="Sydney Pty Ltd", xero_tenant_id=tenant)
    save_sandbox_grants(deps, connection.id, embedded.xero.issue_grant([tenant], scope=XERO_DEFAULT_SCOPES),
                        embedded.zoho.issue_refresh_token(ZOHO_SCOPES))  # a consent that includes ZohoCRM.org.READ

    main(["check", str(connection.id)])
    out = capsys.readouterr().out
    assert "xero organisation: plan Starter, base currency AUD, country AU" in out, out
    assert "zoho: home currency NZD" in out, out
    assert ("currencies: Zoho's home currency NZD is not Xero's base currency AUD: the money figures on Accounts "
            "and Deals are in AUD") in out, out


def test_plan_words_and_currency_notes():
    from connector.xero_organisation import currency_note, describe_organisation, plan_in_words

    assert [plan_in_words(c) for c in ("STARTER", "PREMIUM_20", "DEMO", "NON_GST_CASHBOOK", None)] == [
        "Starter", "Premium 20", "Demo company", "Non-GST Cashbook", None]
    assert describe_organisation({"Class": "PREMIUM", "BaseCurrency": "GBP", "CountryCode": "GB"})["plan"] == "Premium"
    assert currency_note("NZD", "NZD") is None and currency_note(None, "USD") is None
    assert currency_note("NZD", None, "AUD").startswith(
        "mapping.yaml says base_currency AUD but Xero's base currency is NZD: set base_currency: NZD")
    assert "not Xero's base currency GBP" in currency_note("GBP", "EUR")
