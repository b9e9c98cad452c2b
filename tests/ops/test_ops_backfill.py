"""Backfill on the embedded default against the sandboxes: a dry run writes nothing; a budget of
Xero calls per 24 hours is never exceeded, the import waits for it and finishes over several days."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from connector.backfill import BackfillBudget, backfill_step, progress
from connector.clock import SYSTEM_CLOCK, ManualClock
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.ratelimit import PRIORITY_MINUTE_HEADROOM, allowed_share
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.xero_seed import seed_demo_org
from connector.secret import Secret
from connector.store.credentials import TokenSet
from workers.cli import main


def list_calls(embedded) -> list:
    return [r for r in embedded.xero.calls(path_prefix="/api.xro/2.0/Contacts", method="GET") if "pageSize" in r.query]


def test_dry_run_reports_creates_updates_and_skips_and_writes_nothing(embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=1200)
    assert main(["replay", str(cid), "contacts", *contacts[:2]]) == 0  # two already in Zoho, unchanged
    embedded.xero.update_contact(embedded.tenant_id, contacts[0], Name="Renamed In Xero Ltd")  # one changed
    capsys.readouterr()
    zoho_writes, audit_rows = embedded.zoho_writes(), deps.store.audit.count()

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["create"] == {"contacts": 1198} and report["update"] == {"contacts": 1}
    assert report["skip"] == {"contacts": 1}
    assert report["xero_calls"] == len(list_calls(embedded)) == 2  # two pages of 1000
    assert report["zoho_calls"] == 2 * 12  # Accounts and Contacts, 100 a call

    assert embedded.zoho_writes() == zoho_writes  # the sandbox saw no write
    assert deps.store.audit.count() == audit_rows
    assert deps.store.snapshots.get(cid, "contacts", contacts[-1]) is None
    assert deps.store.backfills.for_connection(cid) == []


def most_in_any_window(times: list[float], seconds: float) -> int:
    return max((sum(start <= t < start + seconds for t in times) for start in times), default=0)


def test_dry_run_of_an_org_with_more_pages_than_a_minute_allows_waits_for_the_window_and_completes(
        make_system, capsys):
    clock = ManualClock(SYSTEM_CLOCK.now())  # the command sleeps on it; the sandbox counts its minute on it
    embedded = make_system(clock=clock, xero=XeroSandbox(clock, minute_limit=4), xero_minute_limit=4)
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=7500)  # eight pages
    capsys.readouterr()

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "contacts     create    7500  update       0  skip       0" in captured.out
    calls = list_calls(embedded)
    assert len(calls) == 8 and all(call.status == 200 for call in calls)  # Xero never answered 429
    # At most the backfill's share of the minute limit in any simulated minute (3 of 4).
    assert most_in_any_window([call.started for call in calls], 60) <= allowed_share(
        4, PRIORITY_MINUTE_HEADROOM[PRIORITY_BACKFILL])
    assert "waiting for Xero's minute limit" in captured.err and "Traceback" not in captured.err
    assert deps.governor.usage(embedded.tenant_id)["day_used_by_dry_runs"] == 8


class InterruptedWhileWaiting(ManualClock):
    """Ctrl-C pressed while the command waits."""

    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt


def test_dry_run_stopped_with_ctrl_c_while_it_waits_says_so_without_a_traceback(make_system, capsys):
    clock = InterruptedWhileWaiting(SYSTEM_CLOCK.now())
    embedded = make_system(clock=clock, xero=XeroSandbox(clock), xero_minute_limit=4)
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=3500)  # four pages: the fourth waits
    capsys.readouterr()

    assert main(["backfill", str(embedded.connection_id), "--resources", "contacts", "--dry-run"]) == 130
    captured = capsys.readouterr()
    assert (f"dry run for connection #{embedded.connection_id} stopped after 3000 records; nothing was written. "
            f"Run it again to start over.") in captured.out
    assert "Traceback" not in captured.err and len(list_calls(embedded)) == 3


def test_dry_run_that_reaches_the_daily_limit_waits_for_it_like_the_backfill_and_completes(make_system, capsys):
    from sqlalchemy import update

    from connector.store.tables import Connection

    clock = ManualClock(SYSTEM_CLOCK.now())  # the command sleeps on it: a day passes at once
    embedded = make_system(clock=clock, xero=XeroSandbox(clock))
    deps, cid = embedded.deps, embedded.connection_id
    embedded.xero.set_day_limit(embedded.tenant_id, 5)  # a tiny organisation's day: 4 calls for a backfill
    with deps.store.sessions.begin() as session:  # as README says an operator sets it
        session.execute(update(Connection).where(Connection.id == cid).values(xero_daily_limit=5))
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=5500)  # six pages
    capsys.readouterr()

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "contacts     create    5500  update       0  skip       0" in captured.out
    assert f"backfill #{cid} (dry run): Xero's daily call limit holds the listing; waiting until " in captured.out
    assert "Traceback" not in captured.err
    calls = list_calls(embedded)  # after the day's wait the token has expired: one 401, then a refresh
    assert len([call for call in calls if call.status == 200]) == 6 and 429 not in {call.status for call in calls}
    assert most_in_any_window([call.started for call in calls], 86_400) <= 4  # 90% of the day, as a backfill
    assert clock.now() - timedelta(days=1) >= datetime.fromtimestamp(calls[0].started, tz=timezone.utc)
    assert ("a real backfill: 6 Xero calls, over about " in captured.out
            and "(4 calls per 24 h: the governor's backfill share of Xero's day; " in captured.out)


def test_dry_run_tells_the_calls_and_days_a_real_backfill_takes_at_the_current_budget(embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    capsys.readouterr()

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    day_used = deps.governor.usage(embedded.tenant_id)["day_used"]  # the dry run's own three calls count too
    assert day_used >= 3
    assert report["real_backfill"] == {"xero_calls": 3, "calls_per_day": 4500, "left_today": 4500 - day_used,
                                       "days": 1}

    assert main(["backfill", str(cid), "--resources", "contacts", "--dry-run", "--budget", "2"]) == 0
    assert ("a real backfill: 3 Xero calls, over about 2 days at the current budget (2 calls per 24 h: its "
            "--budget; 2 left now)") in capsys.readouterr().out


def test_backfill_of_a_20000_record_org_stays_within_the_budget_it_was_given(embedded):
    deps, cid = embedded.deps, embedded.connection_id
    clock = ManualClock(deps.store.clock.now())
    # Seeded within one second of the sandbox's clock, whatever the machine's speed: each page is then
    # 1,000 new records (how many share a page's last second otherwise decides what is listed again).
    sandbox_clock, embedded.xero.clock = embedded.xero.clock, ManualClock(clock.now())
    try:
        contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=20_000)  # twenty pages
    finally:
        embedded.xero.clock = sandbox_clock
    budget = BackfillBudget(deps.redis, clock=clock)
    connection = deps.store.connections.get(cid)
    deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=5)
    handed_on: list[str] = []  # what went on to Zoho (pushing is the pipeline's business, tested elsewhere)
    calls_at: list = []

    def step():
        before = len(list_calls(embedded))
        outcome = backfill_step(cid, xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL),
                                checkpoints=deps.store.backfills, budget=budget, snapshots=deps.store.snapshots,
                                audit=deps.store.audit, clock=clock,
                                on_page=lambda resource, ids, sync_ids: handed_on.extend(ids))
        calls_at.extend([clock.now()] * (len(list_calls(embedded)) - before))
        clock.advance(2)  # a page takes a moment
        return outcome

    while (outcome := step()).state == "page":
        pass
    assert outcome.state == "waiting" and outcome.retry_after > 86_000
    state = progress(cid, checkpoints=deps.store.backfills, budget=budget, clock=clock)
    assert state.records == 5000 and state.remaining == 15_000 and state.calls == 5 and state.budget_left == 0
    assert clock.now() + timedelta(days=2, hours=23) < state.eta < clock.now() + timedelta(days=3, hours=1)

    for _ in range(6):  # a day at a time, until done
        clock.advance(timedelta(days=1))
        while (outcome := step()).state == "page":
            pass
        if outcome.state == "done":
            break
    assert outcome.state == "done"
    # Every call stored a page and moved the checkpoint: none listed a finished page again.
    [checkpoint] = deps.store.backfills.for_connection(cid)
    assert checkpoint.pages == len(calls_at) and 20 <= len(calls_at) <= 21
    for first in calls_at:  # never more than the budget in any 24 hours
        assert sum(first <= t < first + timedelta(days=1) for t in calls_at) <= 5
    assert sorted(handed_on) == sorted(contacts)  # each record handed on once
    assert len(deps.store.snapshots.get_many(cid, "contacts", contacts)) == 20_000
    assert progress(cid, checkpoints=deps.store.backfills, budget=budget, clock=clock).state == "done"


def test_backfill_command_on_the_embedded_default_imports_everything_and_a_second_run_writes_nothing(embedded, capsys):
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=30)
    cid = str(embedded.connection_id)

    assert main(["backfill", cid, "--resources", "contacts"]) == 0
    assert "backfill done: 30 records listed in 1 calls" in capsys.readouterr().out
    assert sorted(a["Xero_Contact_ID"] for a in embedded.zoho.records("Accounts")) == sorted(contacts)

    writes = embedded.zoho_writes()
    assert main(["backfill", cid, "--resources", "contacts"]) == 0  # a finished backfill starts afresh
    assert "backfill done: 30 records" in capsys.readouterr().out
    assert embedded.zoho_writes() == writes  # Zoho already holds all of it
    assert main(["backfill", cid, "--resources", "widgets"]) == 2
    assert "--resources takes contacts, invoices, credit-notes, payments, overpayments, prepayments; got 'widgets'" in capsys.readouterr().err


def _stepper(embedded, clock=None):
    deps, cid = embedded.deps, embedded.connection_id
    connection = deps.store.connections.get(cid)
    budget = BackfillBudget(deps.redis, clock=clock or deps.store.clock)

    def step(expect):
        return backfill_step(cid, xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL),
                             checkpoints=deps.store.backfills, budget=budget, snapshots=deps.store.snapshots,
                             audit=deps.store.audit, clock=clock or deps.store.clock,
                             on_page=lambda resource, ids, sync_ids: None, expect=expect)
    return step


def test_a_step_left_from_a_killed_chain_lists_nothing_once_the_backfill_is_resumed(embedded):
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    step = _stepper(embedded)
    [started] = deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=None)
    first = step(("contacts", started.version))
    assert first.state == "page" and len(list_calls(embedded)) == 1
    left_over = first.expect  # the continuation still queued when its worker was killed

    # `connector backfill N` again: a new chain, while the left-over step still waits in the queue.
    [resumed] = deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=None)
    assert resumed.page == 2 and resumed.version != left_over[1]
    assert step(left_over).state == "superseded"
    assert len(list_calls(embedded)) == 1  # the left-over step listed nothing
    outcome = step(("contacts", resumed.version))
    assert outcome.state == "page" and len(list_calls(embedded)) == 2
    while outcome.state == "page" and outcome.expect is not None:
        outcome = step(outcome.expect)
    checkpoint = deps.store.backfills.get(cid, "contacts")
    assert len(list_calls(embedded)) == checkpoint.pages == 3  # every listing stored its page: none listed twice
    assert deps.store.backfills.get(cid, "contacts").state == "done"


def test_beat_claims_a_stale_backfill_so_the_step_left_from_its_lost_chain_lists_nothing(embedded):
    from workers.backfill_tasks import STALE_AFTER, claim_due

    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=1500)  # two pages
    clock = ManualClock(deps.store.clock.now())
    step = _stepper(embedded, clock)
    started, _ = deps.store.backfills.start(cid, ["contacts", "invoices"], since=None, calls_per_day=None)
    left_over = step(("contacts", started.version)).expect
    assert claim_due(deps.store.backfills, clock.now()) == []  # fresh: its chain is alive

    later = deps.store.clock.now() + STALE_AFTER + timedelta(minutes=1)
    [(connection_id, expect)] = claim_due(deps.store.backfills, later)
    assert connection_id == cid and expect[0] == "contacts" and expect != left_over
    assert step(left_over).state == "superseded" and len(list_calls(embedded)) == 1
    assert step(expect).state == "page" and len(list_calls(embedded)) == 2


def test_resuming_a_waiting_backfill_never_lists_its_finished_resource_again(embedded):
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    clock = ManualClock(deps.store.clock.now())
    step = _stepper(embedded, clock)
    contacts, _ = deps.store.backfills.start(cid, ["contacts", "invoices"], since=None, calls_per_day=3)
    outcome = step(("contacts", contacts.version))
    while outcome.state == "page" and outcome.expect is not None:
        outcome = step(outcome.expect)
    assert outcome.state == "waiting" and outcome.resource == "invoices"  # three calls: the day's budget
    assert deps.store.backfills.get(cid, "contacts").state == "done" and len(list_calls(embedded)) == 3

    # The same command again, while the backfill waits for its budget.
    contacts, invoices = deps.store.backfills.start(cid, ["contacts", "invoices"], since=None, calls_per_day=3)
    assert contacts.state == "done" and contacts.pages == 3 and contacts.records == 2500
    clock.advance(timedelta(days=1))
    outcome = step(("invoices", invoices.version))
    while outcome.state == "page" and outcome.expect is not None:
        outcome = step(outcome.expect)
    assert outcome.state == "page" and outcome.resource == "invoices" and outcome.expect is None
    assert len(list_calls(embedded)) == 3  # no contacts page listed again
    assert progress(cid, checkpoints=deps.store.backfills, budget=BackfillBudget(deps.redis, clock=clock),
                    clock=clock).state == "done"


def test_a_backfill_waiting_for_its_budget_has_an_eta_from_the_budget_even_before_every_resource_is_counted(
        embedded, capsys):
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    clock = deps.store.clock
    step = _stepper(embedded)
    contacts, _ = deps.store.backfills.start(cid, ["contacts", "invoices"], since=None, calls_per_day=3)
    outcome = step(("contacts", contacts.version))
    while outcome.state == "page" and outcome.expect is not None:
        outcome = step(outcome.expect)
    assert outcome.state == "waiting"  # invoices: not listed yet, so their count is unknown
    resume_after = deps.store.backfills.get(cid, "invoices").resume_after

    state = progress(cid, checkpoints=deps.store.backfills, budget=BackfillBudget(deps.redis, clock=clock),
                     clock=clock)
    assert state.state == "waiting" and state.resume_after == resume_after
    # At least the budget's wait and one page of invoices; more if there are more, so a lower bound.
    assert state.eta is not None and state.eta >= resume_after and state.eta_at_least
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"waiting for its budget until {resume_after.isoformat(timespec='seconds')}" in out
    assert f"ETA >= {state.eta.isoformat(timespec='seconds')}" in out


def test_backfill_command_with_a_budget_waits_for_it_and_goes_on_the_next_day(make_system, capsys):
    clock = ManualClock(SYSTEM_CLOCK.now())  # the command sleeps on it: a day passes at once
    embedded = make_system(clock=clock, xero=XeroSandbox())  # Xero on real time: its tokens outlive the day
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    started = clock.now()

    assert main(["backfill", str(embedded.connection_id), "--resources", "contacts", "--budget", "2"]) == 0
    out = capsys.readouterr().out
    [checkpoint] = embedded.deps.store.backfills.for_connection(embedded.connection_id)
    calls = len(list_calls(embedded))
    assert checkpoint.state == "done" and checkpoint.pages == calls >= 3
    assert f"backfill #{embedded.connection_id}: its budget of 2 Xero calls per 24 h is spent; waiting until " in out
    assert f"backfill done: 2500 records listed in {calls} calls" in out
    assert clock.now() >= started + timedelta(days=1)  # waited for the budget instead of exiting
    assert sorted(a["Xero_Contact_ID"] for a in embedded.zoho.records("Accounts")) == sorted(contacts)


def test_backfill_on_the_embedded_default_before_zoho_is_connected_says_so_in_one_line(embedded, capsys):
    tenant_id = embedded.xero.add_tenant("Xero Only Ltd")
    seed_demo_org(embedded.xero, tenant_id, contacts=2)
    connection = embedded.deps.store.connections.create(name="Xero Only Ltd", xero_tenant_id=tenant_id)
    grant = embedded.xero.issue_grant([tenant_id])
    embedded.deps.credentials.save(connection.id, "xero", TokenSet(
        access_token=Secret(grant["access_token"]), refresh_token=Secret(grant["refresh_token"]),
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=int(grant["expires_in"]))))
    capsys.readouterr()

    assert main(["backfill", str(connection.id), "--resources", "contacts"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"backfill: Zoho is not connected yet for connection {connection.id}: run `connector connect zoho "
        f"--connection {connection.id}` (or follow README's First deployment)")
    assert embedded.deps.store.connections.get(connection.id).state == "active"


def test_a_backfill_step_waits_while_the_day_budget_planner_defers_it(embedded):
    """The planner's share of the day (shared with the polls) holds a backfill page like its own budget."""
    deps, cid = embedded.deps, embedded.connection_id
    seed_demo_org(embedded.xero, embedded.tenant_id, contacts=3)
    deps.store.backfills.start(cid, ["contacts"], since=None, calls_per_day=None)
    connection = deps.store.connections.get(cid)
    answers = iter([3600.0, 0.0])  # deferred for an hour, then granted

    def step():
        return backfill_step(cid, xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL),
                             checkpoints=deps.store.backfills, budget=BackfillBudget(deps.redis, clock=deps.store.clock),
                             snapshots=deps.store.snapshots, audit=deps.store.audit, clock=deps.store.clock,
                             on_page=lambda resource, ids, sync_ids: None, plan=lambda: next(answers))

    before = len(list_calls(embedded))
    waiting = step()
    assert waiting.state == "waiting" and waiting.retry_after == 3600.0
    assert len(list_calls(embedded)) == before  # no call made
    [checkpoint] = deps.store.backfills.for_connection(cid)
    assert checkpoint.resume_after is not None  # the checkpoint waits: beat's resume_backfills goes on later
    deps.store.backfills.wait_until(checkpoint, deps.store.clock.now())
    assert step().state == "page"


def test_the_backfill_task_asks_the_planner(embedded):
    from workers.backfill_tasks import planned_wait

    deps, cid = embedded.deps, embedded.connection_id
    assert planned_wait(deps, cid) == 0.0
    while planned_wait(deps, cid) == 0.0:
        pass  # the day's scheduled share is spent
    assert deps.budget_planner.deferred(cid)["backfill"]["reason"] == "share"
