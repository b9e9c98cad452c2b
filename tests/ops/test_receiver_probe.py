"""The receiver probe's state machine (connector/receiver_probe.py observe: state, one probe's result and the time
in; the next state and what changed out), its shared state in a real Redis, the settings that turn it off, and
the alert it raises when the receiver stays unreachable at its public URL."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest

from connector.alerts import RECEIVER_UNREACHABLE, Facts, Thresholds, evaluate
from connector.clock import ManualClock
from connector.errors import ConfigError
from connector.heartbeats import BEAT, WORKER
from connector.receiver_probe import (
    NEVER_REACHABLE,
    NOT_PROBED_YET,
    REACHABLE,
    UNREACHABLE,
    ProbePolicy,
    ProbeState,
    ReceiverProbe,
    disabled_reason,
    observe,
    probe_url,
)
from connector.settings import Settings
from tests.conftest import redis_db, require_redis

POLICY = ProbePolicy()  # 2 failed probes, the first at least 90 s before the recovery
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc).timestamp()
MINUTE = 60.0


def run(results: list[bool], *, start: ProbeState | None = None, every: float = MINUTE):
    """Probes a minute apart (True: answered 200), from T0 or after ``start``'s last: the final state and what
    each probe changed."""
    state, changes = start or ProbeState(), []
    now = T0 if state.last_probe is None else state.last_probe + every
    for ok in results:
        state, transition = observe(state, ok, None if ok else "ConnectionError", now, POLICY)
        changes.append(transition)
        now += every
    return state, changes


def outages_ended(changes) -> list[float]:
    return [t.outage_ended for t in changes if t.outage_ended is not None]


def test_up_then_down_then_back_up_owes_exactly_one_catch_up():
    state, changes = run([True, True, False, False, False, True, True, True])
    assert outages_ended(changes) == [180.0]  # from the first failed probe to the one that found it back
    assert not any(t.unseen for t in changes)
    assert state.state == REACHABLE and state.catch_up_owed == T0 + 5 * MINUTE
    assert (state.outage_from, state.outage_to) == (T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    assert [t.went_down for t in changes] == [False, False, False, True, False, False, False, False]  # logged once
    assert not any(t.xero_may_have_disabled for t in changes)


def test_a_single_failed_probe_or_two_a_moment_apart_is_a_blip_not_an_outage():
    _, changes = run([True, False, True, True])
    assert outages_ended(changes) == [] and changes[2].blip
    # Two failures (a retried task) within the grace: still a blip.
    state, changes = run([False, False, True], start=run([True])[0], every=20.0)
    assert outages_ended(changes) == [] and state.catch_up_owed is None and state.state == REACHABLE


def test_flapping_under_the_grace_never_owes_a_catch_up():
    _, changes = run([True, False, True, False, True, False, True, False, True])
    assert outages_ended(changes) == []
    assert not any(t.went_down for t in changes)


def test_a_receiver_never_reachable_is_reported_once_and_owes_no_catch_up():
    state, changes = run([False] * 30)
    assert state.state == NEVER_REACHABLE and state.failures == 30 and state.last_ok is None
    assert [i for i, t in enumerate(changes) if t.never_reachable] == [1]  # once, at the second failure
    assert not any(t.went_down for t in changes)
    # Answering at last (the URL fixed): nothing says a delivery was missed; no catch-up, none owed.
    state, changes = run([True, True], start=state)
    assert changes[0].first_reachable and outages_ended(changes) == [] and state.catch_up_owed is None


def test_probes_that_stopped_for_longer_than_the_blind_gap_owe_a_catch_up_once_the_receiver_answers():
    # No worker or beat ran the probes for an hour (a host down with everything on it): whether the receiver
    # answered meanwhile is unknown, so the first answer after it owes a catch-up, dated from the last probe.
    state, _ = run([True, True])
    state, changes = run([True], start=state, every=3600.0)
    assert outages_ended(changes) == [3600.0] and state.outage_from == T0 + MINUTE and changes[0].unseen
    # The same after a failed first probe: back a minute later is not a blip then.
    state, _ = run([True, True])
    state, changes = run([False], start=state, every=3600.0)
    state, more = run([True], start=state)
    assert outages_ended(changes + more) == [3660.0] and state.outage_from == T0 + MINUTE
    # A gap shorter than the blind gap (a deploy restarting beat) is nothing.
    state, _ = run([True])
    state, changes = run([True], start=state, every=POLICY.blind_gap)
    assert outages_ended(changes) == [] and state.catch_up_owed is None
    # Never answered before the gap: still nothing owed.
    state, _ = run([False, False])
    state, changes = run([True], start=state, every=3600.0)
    assert outages_ended(changes) == [] and changes[0].first_reachable


def test_an_outage_past_xeros_day_of_retries_says_xero_may_have_disabled_the_webhook():
    up, _ = run([True])
    _, changes = run([False] * 24 * 60 + [True], start=up)
    assert outages_ended(changes) == [24 * 3600.0] and changes[-1].xero_may_have_disabled
    _, changes = run([False] * 23 * 60 + [True], start=up)
    assert outages_ended(changes) == [23 * 3600.0] and not changes[-1].xero_may_have_disabled


def test_an_owed_catch_up_survives_later_probes_until_settled():
    state, _ = run([True, False, False, True, True, False, True])
    assert state.catch_up_owed == T0 + 3 * MINUTE  # a later blip does not clear it


def test_the_state_round_trips_through_its_redis_form():
    state, _ = run([True, False, False, True, False])
    assert ProbeState.from_redis(state.to_redis()) == state
    assert ProbeState.from_redis({}) == ProbeState() and ProbeState().state == NOT_PROBED_YET


def test_the_probed_url_carries_no_credential_query_or_fragment():
    assert probe_url("https://connector.example.com/") == "https://connector.example.com/healthz"
    assert probe_url("https://user:pw@connector.example.com:8443/base/?t=1#x") == \
        "https://connector.example.com:8443/base/healthz"


def test_the_probe_is_off_in_the_embedded_mode_by_setting_or_without_a_public_url():
    production = Settings(redis_url="redis://127.0.0.1:6379/0", public_url="https://connector.example.com")
    assert disabled_reason(production) is None
    assert "embedded" in disabled_reason(Settings())  # no Redis: one process, the demo's default public URL
    assert disabled_reason(production.with_overrides(receiver_probe=False)) == "CONNECTOR_RECEIVER_PROBE=off"
    assert disabled_reason(production.with_overrides(public_url="")) == "CONNECTOR_PUBLIC_URL is not set"
    assert Settings.from_env({"CONNECTOR_RECEIVER_PROBE": "off"}).receiver_probe is False
    assert Settings.from_env({}).receiver_probe is True
    with pytest.raises(ConfigError, match="CONNECTOR_RECEIVER_PROBE"):
        Settings.from_env({"CONNECTOR_RECEIVER_PROBE": "sometimes"})


# -- the alert ---------------------------------------------------------------------------------------------

THRESHOLDS = Thresholds(silence=600)
URL = "https://connector.example.com/healthz"


def receiver_facts(state: ProbeState, now: float) -> Facts:
    return Facts(now=datetime.fromtimestamp(now, tz=timezone.utc),
                 heartbeats={WORKER: now - 10, BEAT: now - 10}, public_url="https://connector.example.com",
                 receiver=state, receiver_url=URL)


def test_a_receiver_unreachable_for_the_silence_threshold_is_one_incident_with_what_fixes_it():
    up, _ = run([True])
    down, _ = run([False] * 10, start=up)  # failing from T0 + 1 min to T0 + 10 min
    assert evaluate(receiver_facts(down, T0 + 10 * MINUTE), THRESHOLDS) == []  # 9 minutes: not yet
    [condition] = evaluate(receiver_facts(down, T0 + 11 * MINUTE + 1), THRESHOLDS)
    assert condition.key == condition.kind == RECEIVER_UNREACHABLE
    assert URL in condition.title and "no answer for 10 min" in condition.title
    assert "ConnectionError" in condition.detail and "catch-up" in condition.detail
    assert condition.fix == f"restart the web process, then curl -fsS {URL}"
    assert condition.since == datetime.fromtimestamp(T0 + MINUTE, tz=timezone.utc)
    back, _ = run([True], start=down)
    assert evaluate(receiver_facts(back, T0 + 12 * MINUTE), THRESHOLDS) == []  # resolved once it answers


def test_a_receiver_never_reachable_is_an_incident_naming_what_to_check():
    never, _ = run([False] * 12)
    [condition] = evaluate(receiver_facts(never, T0 + 12 * MINUTE), THRESHOLDS)
    assert condition.title == f"the receiver has never answered at its public URL {URL}"
    assert "CONNECTOR_PUBLIC_URL" in condition.detail and "CONNECTOR_RECEIVER_PROBE=off" in condition.detail
    assert condition.fix == f"curl -fsS {URL}"


def test_no_receiver_alert_where_it_is_not_probed():
    now = T0 + 3600
    facts = Facts(now=datetime.fromtimestamp(now, tz=timezone.utc), heartbeats={WORKER: now, BEAT: now},
                  public_url="https://connector.example.com")
    assert evaluate(facts, THRESHOLDS) == []


# -- the shared state in Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis():
    return require_redis(redis_db("alerts"))


class Answers:
    """A stand-in for the HTTP session: what /healthz answers next (the real GET is the task test's)."""

    def __init__(self) -> None:
        self.ok = True
        self.calls: list[tuple[str, float]] = []

    def get(self, url, *, timeout, allow_redirects, headers):
        import requests

        self.calls.append((url, timeout))
        if not self.ok:
            raise requests.ConnectionError("refused")
        return type("Answer", (), {"status_code": 200, "close": lambda self: None})()


def test_two_probes_racing_record_one_outage_and_the_owed_catch_up_is_settled_once(redis, caplog):
    clock = ManualClock(T0)
    answers = Answers()
    probe = ReceiverProbe(redis, public_url="https://user:secret@connector.example.com", session=answers, clock=clock)
    assert probe.url == URL
    probe.probe()
    answers.ok = False
    with caplog.at_level(logging.WARNING, logger="connector.receiver_probe"):
        for _ in range(3):
            clock.advance(MINUTE)
            probe.probe()
    assert [r.getMessage() for r in caplog.records] == ["receiver.probe.unreachable"]
    assert "secret" not in caplog.text and probe.load().state == UNREACHABLE
    answers.ok = True
    clock.advance(MINUTE)
    # Two workers probing the same minute: one transition between them.
    results = []
    racers = [threading.Thread(target=lambda: results.append(probe.probe()[1])) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(t.outage_ended is not None for t in results) == [False, True]
    owed = probe.load().catch_up_owed
    assert owed == T0 + 4 * MINUTE
    probe.settle_catch_up(owed)
    assert probe.load().catch_up_owed is None
    status = probe.status()
    assert status["state"] == REACHABLE and status["url"] == URL and status["last_outage"]["seconds"] == 180
    assert status["catch_up_owed"] is False
    assert all(url == URL and timeout == POLICY.timeout for url, timeout in answers.calls)


def test_an_outage_ending_while_an_older_catch_up_is_owed_keeps_the_newer(redis):
    probe = ReceiverProbe(redis, public_url="https://connector.example.com", session=Answers(), clock=ManualClock(T0))
    probe.record(True, None)
    for at in (1, 2):
        probe._clock.advance(MINUTE)
        probe.record(False, "ReadTimeout")
    probe._clock.advance(MINUTE)
    first = probe.record(True, None)[0].catch_up_owed
    for at in (1, 2):
        probe._clock.advance(MINUTE)
        probe.record(False, "http_503")
    probe._clock.advance(MINUTE)
    second = probe.record(True, None)[0].catch_up_owed
    assert second == first + 3 * MINUTE
    probe.settle_catch_up(first)  # the task that raised the first one finishes late
    assert probe.load().catch_up_owed == second
    assert timedelta(seconds=second - first) == timedelta(minutes=3)
