"""The schedule's pure decisions: state and a time in, a decision out."""

from __future__ import annotations

from datetime import datetime, timezone

from connector.xero_schedule import (
    ECHO_MISSING,
    GAP,
    OrgSchedule,
    SchedulePolicy,
    catch_up_due,
    check_due,
    delivery_is_late,
    payments_due,
    payments_interval,
    sequence_gap,
    sight_invoices,
)

POLICY = SchedulePolicy()
NOW = 1_000_000.0


def test_no_trigger_means_only_the_rare_safety_poll():
    assert catch_up_due(OrgSchedule(last_catch_up=NOW - 3600), POLICY, NOW) is None
    safety = catch_up_due(OrgSchedule(last_catch_up=NOW - POLICY.safety_interval), POLICY, NOW)
    assert safety is not None and safety.reason == "safety"
    assert safety.resources == ("contacts", "invoices", "creditnotes")


def test_a_sequence_gap_triggers_a_catch_up_after_the_grace():
    state = OrgSchedule(triggers={GAP: NOW}, last_catch_up=NOW - 60)
    assert catch_up_due(state, POLICY, NOW + 10) is None  # an out-of-order delivery may still fill it
    assert catch_up_due(state, POLICY, NOW + POLICY.trigger_grace).reason == GAP


def test_a_write_back_without_its_webhook_echo_is_an_outage():
    wrote = NOW - POLICY.echo_timeout
    silent = OrgSchedule(last_catch_up=NOW - 3600, last_write_back_at=wrote, last_webhook_at=wrote - 100)
    assert catch_up_due(silent, POLICY, NOW).reason == ECHO_MISSING
    echoed = OrgSchedule(last_catch_up=NOW - 3600, last_write_back_at=wrote, last_webhook_at=wrote + 5)
    assert catch_up_due(echoed, POLICY, NOW) is None
    caught_up = OrgSchedule(last_catch_up=wrote + 700, last_write_back_at=wrote)
    assert catch_up_due(caught_up, POLICY, NOW + 800) is None


def test_sequences_and_late_deliveries():
    assert sequence_gap(None, 5, 6) is False  # nothing seen yet: nothing to compare
    assert sequence_gap(4, 5, 9) is False
    assert sequence_gap(4, 7, 9) is True
    assert sequence_gap(4, 0, 0) is False  # intent-to-receive probe
    event = datetime.fromtimestamp(NOW - POLICY.backlog_lag - 1, tz=timezone.utc).replace(tzinfo=None)
    assert delivery_is_late([event], NOW, POLICY) is True
    assert delivery_is_late([event], NOW - 10, POLICY) is False


def test_payments_are_polled_often_only_while_open_invoices_changed_recently():
    hot = OrgSchedule(open_invoices=3, open_changed_at=NOW - 600)
    assert payments_interval(hot, POLICY, NOW)[0] == POLICY.payments_min_interval
    cooled = OrgSchedule(open_invoices=3, open_changed_at=NOW - POLICY.hot_window - 1)
    assert payments_interval(cooled, POLICY, NOW)[0] == POLICY.payments_max_delay
    assert payments_interval(OrgSchedule(), POLICY, NOW)[0] == POLICY.payments_max_delay
    polled = OrgSchedule(open_invoices=3, open_changed_at=NOW - 600, last_payments_poll=NOW - 200)
    assert payments_due(polled, POLICY, NOW) is None
    assert payments_due(polled, POLICY, NOW + 100).purpose == "payments"


def test_on_starter_the_shortest_payment_interval_fits_the_share():
    hot = OrgSchedule(open_invoices=3, open_changed_at=NOW - 600)
    # 300 scheduled calls a day; catch-ups take 9 and the weekly check 1/7; a payments poll lists payments,
    # overpayments and prepayments (3 calls): 97 polls, one every 15 minutes
    interval = payments_interval(hot, POLICY, NOW, allowance=300)[0]
    assert 850 < interval < 900 and 3 * 86400 / interval + 9 + 1 / 7 <= 300
    # 100 a day: a poll at the longest delay (48 a day, 144 calls) is more than the share; the planner defers
    assert payments_interval(hot, POLICY, NOW, allowance=100)[0] == POLICY.payments_max_delay
    assert payments_interval(hot, POLICY, NOW, allowance=1500)[0] == POLICY.payments_min_interval  # Core: 5 min
    assert payments_interval(hot, POLICY, NOW, allowance=10)[0] == POLICY.payments_max_delay  # never past it


def test_when_payments_raise_invoice_webhooks_the_poll_is_a_safety_net_at_the_longest_delay():
    state = OrgSchedule(open_invoices=3, open_changed_at=NOW - 60, last_payments_poll=NOW - 1000,
                        payments_seen_via_invoice=NOW - 100)
    assert payments_interval(state, POLICY, NOW)[0] == POLICY.payments_max_delay
    assert payments_due(state, POLICY, NOW) is None
    # a payment seen through an invoice fetch counts as looked at: the poll is skipped past it
    assert payments_due(state, POLICY, NOW - 1000 + POLICY.payments_max_delay + 1) is None
    assert payments_due(state, POLICY, NOW - 100 + POLICY.payments_max_delay) is not None


def test_the_consistency_check_is_weekly():
    assert check_due(OrgSchedule(), POLICY, NOW).purpose == "check"
    assert check_due(OrgSchedule(last_check=NOW - 86400), POLICY, NOW) is None


def test_invoice_sighting_finds_open_invoices_and_recent_payments():
    today = int(NOW * 1000)
    invoices = [
        {"InvoiceID": "a", "Status": "AUTHORISED", "AmountDue": 10, "Type": "ACCREC",
         "Payments": [{"PaymentID": "p-new", "Date": f"/Date({today}+0000)/"},
                      {"PaymentID": "p-old", "Date": "/Date(86400000+0000)/"}]},
        {"InvoiceID": "b", "Status": "PAID", "AmountDue": 0, "Type": "ACCREC", "Payments": []},
    ]
    sighting = sight_invoices(invoices, NOW)
    assert sighting.open_ids == {"a"} and sighting.closed_ids == {"b"}
    assert sighting.payment_ids == {"p-new", "p-old"} and sighting.recent_payment_ids == {"p-new"}


def test_overpayments_and_prepayments_ride_the_payments_poll_while_hot_and_daily_otherwise():
    credits = ("payments", "overpayments", "prepayments")
    hot = OrgSchedule(open_invoices=3, open_changed_at=NOW - 600, last_credits_poll=NOW - 600)
    assert payments_due(hot, POLICY, NOW).resources == credits  # at the payments cadence while invoices are hot
    idle = OrgSchedule(last_payments_poll=NOW - POLICY.payments_max_delay, last_credits_poll=NOW - 3600)
    assert payments_due(idle, POLICY, NOW).resources == ("payments",)
    stale = OrgSchedule(last_payments_poll=NOW - POLICY.payments_max_delay,
                        last_credits_poll=NOW - POLICY.credits_max_delay)
    assert payments_due(stale, POLICY, NOW).resources == credits
    assert payments_due(OrgSchedule(), POLICY, NOW).resources == credits  # never listed yet
