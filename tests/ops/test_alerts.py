"""Alert conditions (connector/alerts.py evaluate: facts in, conditions out), the settings that configure
alerts, the heartbeats, and the incident book on a real Redis (two evaluators racing send once)."""

from __future__ import annotations

from dataclasses import replace

import threading
from datetime import datetime, timedelta, timezone

import pytest

from connector.alerts import (
    BUDGET,
    CHANNEL_NOT_RENEWED,
    FAILURES,
    NEEDS_REAUTH,
    PARKED,
    SILENT,
    Condition,
    ConnectionFacts,
    Facts,
    IncidentBook,
    Thresholds,
    evaluate,
)
from connector.clock import ManualClock
from connector.errors import ConfigError
from connector.heartbeats import BEAT, RECEIVER, WORKER, Heartbeats
from connector.settings import Settings
from tests.conftest import redis_db, require_redis

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
THRESHOLDS = Thresholds(failures_per_hour=10, parked_age=6 * 3600, quiet_period=4 * 3600, silence=600)
PUBLIC = "https://connector.example.com"
FRESH_CHANNEL = (NOW + timedelta(days=5),)


def healthy(**changes) -> ConnectionFacts:
    return ConnectionFacts(**{"id": 3, "name": "Acme", "channel_expiries": FRESH_CHANNEL, "budget_day_limit": 5000,
                              "budget_used_today": 120, "budget_projected_today": 300, **changes})


def facts(*connections: ConnectionFacts, heartbeats: dict | None = None) -> Facts:
    alive = {WORKER: NOW.timestamp() - 20, BEAT: NOW.timestamp() - 30, RECEIVER: None}
    return Facts(now=NOW, connections=connections, heartbeats=alive if heartbeats is None else heartbeats,
                 public_url=PUBLIC)


def only(found: list[Condition]) -> Condition:
    assert len(found) == 1, found
    return found[0]


def test_a_healthy_connection_and_live_processes_raise_nothing():
    assert evaluate(facts(healthy()), THRESHOLDS) == []


def test_a_connection_needing_reauthorisation_names_the_system_and_the_one_command():
    since = NOW - timedelta(hours=2)
    zoho = only(evaluate(facts(healthy(state="needs_reauth", state_since=since, parked_for_reauth=42,
                                       state_reason="Zoho token refresh: invalid_code (refresh token revoked)")),
                         THRESHOLDS))
    assert (zoho.kind, zoho.key, zoho.since, zoho.records) == (NEEDS_REAUTH, "needs_reauth:3", since, 42)
    assert zoho.fix == "connector connect zoho --connection 3" and "Zoho" in zoho.title
    xero = only(evaluate(facts(healthy(state="needs_reauth", state_reason="invalid_grant (refresh token expired)")),
                         THRESHOLDS))
    assert xero.fix == "connector connect xero"
    # The lost grant is the incident: its parked work, failures and budget are not reported again.
    assert only(evaluate(facts(healthy(state="needs_reauth", failures_last_hour={"Unauthorized": 50},
                                       parked_old={"outage": 3})), THRESHOLDS)).kind == NEEDS_REAUTH


def test_a_zoho_channel_is_an_incident_only_once_renewals_failed():
    # Inside the renewal margin but renewal (every 30 minutes) has had no hour yet: not an incident.
    due = healthy(channel_expiries=(NOW + timedelta(days=2) - timedelta(minutes=30),))
    assert evaluate(facts(due), THRESHOLDS) == []
    late = only(evaluate(facts(healthy(channel_expiries=(NOW + timedelta(hours=20),))), THRESHOLDS))
    assert late.kind == CHANNEL_NOT_RENEWED and late.fix == "connector connect zoho --connection 3"
    assert late.since == NOW + timedelta(hours=20) - timedelta(days=2) and "expires" in late.detail
    lapsed = only(evaluate(facts(healthy(channel_expiries=(NOW - timedelta(hours=1),))), THRESHOLDS))
    assert "expired" in lapsed.detail


def test_failures_open_an_incident_at_the_threshold_an_hour():
    assert evaluate(facts(healthy(failures_last_hour={"DUPLICATE_DATA": 6, "Timeout": 3})), THRESHOLDS) == []
    failing = only(evaluate(facts(healthy(failures_last_hour={"DUPLICATE_DATA": 7, "Timeout": 3})), THRESHOLDS))
    assert (failing.kind, failing.records, failing.fix) == (FAILURES, 10, "connector replay 3 --failed")
    assert "DUPLICATE_DATA 7, Timeout 3" in failing.detail and f"{PUBLIC}/console/failures?connection=3" in failing.detail


def test_an_open_failures_incident_clears_only_well_below_the_threshold():
    trickle = healthy(failures_last_hour={"Timeout": 6})
    assert evaluate(facts(trickle), THRESHOLDS) == []  # below 10: no new incident
    still = evaluate(Facts(now=NOW, connections=(trickle,), heartbeats={}, open_incidents=frozenset({"failures:3"})),
                     THRESHOLDS)
    assert [c.key for c in still] == ["failures:3"]  # open, and 6 is not yet well below 10
    cleared = healthy(failures_last_hour={"Timeout": 4})
    assert evaluate(Facts(now=NOW, connections=(cleared,), heartbeats={}, open_incidents=frozenset({"failures:3"})),
                    THRESHOLDS) == []


def test_the_day_budget_projected_past_the_limit():
    assert evaluate(facts(healthy(budget_projected_today=4999)), THRESHOLDS) == []
    budget = only(evaluate(facts(healthy(budget_used_today=4000, budget_projected_today=5200)), THRESHOLDS))
    assert budget.kind == BUDGET and budget.fix == f"{PUBLIC}/console/"
    assert "4000 of 5000 calls used, 5200 projected" in budget.detail
    near = healthy(budget_projected_today=4600)
    assert [c.kind for c in evaluate(Facts(now=NOW, connections=(near,), heartbeats={},
                                           open_incidents=frozenset({"xero_budget:3"})), THRESHOLDS)] == [BUDGET]


def test_parked_work_older_than_the_threshold():
    oldest = NOW - timedelta(hours=9)
    parked = only(evaluate(facts(healthy(parked_old={"outage": 4, "daily_budget": 2}, parked_oldest=oldest)),
                           THRESHOLDS))
    assert (parked.kind, parked.records, parked.since) == (PARKED, 6, oldest)
    assert "daily_budget 2, outage 4" in parked.detail and "6 h" in parked.title


def test_a_silent_worker_or_beat_but_not_one_never_seen():
    stale = NOW.timestamp() - 601
    worker = only(evaluate(facts(healthy(), heartbeats={WORKER: stale, BEAT: NOW.timestamp(), RECEIVER: stale}),
                           THRESHOLDS))
    assert (worker.kind, worker.key, worker.fix, worker.connection_id) == (SILENT, "silent:worker", "connector worker",
                                                                         None)
    assert "10 min" in worker.title
    assert evaluate(facts(healthy(), heartbeats={WORKER: None, BEAT: None, RECEIVER: None}), THRESHOLDS) == []


def test_a_worker_never_seen_since_beat_started_watching_longer_than_the_silence_is_an_incident():
    never_seen = {WORKER: None, BEAT: NOW.timestamp(), RECEIVER: None}

    def evaluated(watching_for: float):
        return evaluate(replace(facts(healthy(), heartbeats=never_seen),
                                watching_since=NOW - timedelta(seconds=watching_for)), THRESHOLDS)

    assert evaluated(600) == []  # beat has only just started: the worker may still be starting
    worker = only(evaluated(601))
    assert (worker.kind, worker.key, worker.fix) == (SILENT, "silent:worker", "connector worker")
    assert worker.since == NOW - timedelta(seconds=601) and "no heartbeat since" in worker.title
    assert "never" in worker.detail


def test_a_disabled_connection_is_not_watched():
    assert evaluate(facts(healthy(state="disabled", failures_last_hour={"X": 99})), THRESHOLDS) == []


# -- settings --------------------------------------------------------------------------------------


def test_alert_settings_parse_and_fail_closed():
    env = {"CONNECTOR_ALERT_WEBHOOK": "https://hooks.example.com/services/T0/B0/secret-part",
           "CONNECTOR_SMTP_HOST": "smtp.example.com", "CONNECTOR_SMTP_FROM": "connector@example.com",
           "CONNECTOR_SMTP_TO": "ops@example.com, finance@example.com", "CONNECTOR_SMTP_USER": "mailer",
           "CONNECTOR_SMTP_PASSWORD": "pw-never-shown", "CONNECTOR_ALERT_QUIET_PERIOD": "2h",
           "CONNECTOR_ALERT_FAILURES_PER_HOUR": "25"}
    settings = Settings.from_env(env)
    assert settings.smtp_to == ("ops@example.com", "finance@example.com") and settings.smtp_port == 587
    assert settings.smtp_starttls and settings.alert_quiet_period == 7200 and settings.alert_failures_per_hour == 25
    assert "secret-part" not in repr(settings) and "pw-never-shown" not in repr(settings)
    defaults = Settings.from_env({})
    assert not defaults.alert_webhook and defaults.smtp_host == "" and defaults.alert_silence == 600
    refused = [
        ({"CONNECTOR_ALERT_WEBHOOK": "hooks.example.com/x"}, "CONNECTOR_ALERT_WEBHOOK"),
        ({**env, "CONNECTOR_SMTP_TO": ""}, "CONNECTOR_SMTP_TO"),
        ({**env, "CONNECTOR_SMTP_FROM": "not an address"}, "CONNECTOR_SMTP_FROM"),
        ({**env, "CONNECTOR_SMTP_PASSWORD": ""}, "CONNECTOR_SMTP_PASSWORD"),
        ({**env, "CONNECTOR_SMTP_PORT": "smtp"}, "CONNECTOR_SMTP_PORT"),
        ({"CONNECTOR_SMTP_TO": "ops@example.com"}, "CONNECTOR_SMTP_HOST"),
        ({"CONNECTOR_ALERT_SILENCE": "soon"}, "CONNECTOR_ALERT_SILENCE"),
        ({"CONNECTOR_ALERT_FAILURES_PER_HOUR": "0"}, "CONNECTOR_ALERT_FAILURES_PER_HOUR"),
    ]
    for bad, name in refused:
        with pytest.raises(ConfigError, match=name) as caught:
            Settings.from_env(bad)
        assert "pw-never-shown" not in str(caught.value) and "secret-part" not in str(caught.value)


# -- heartbeats and the incident book on real Redis --------------------------------------------------


@pytest.fixture
def redis():
    return require_redis(redis_db("alerts"))


def test_heartbeats_write_at_most_once_an_interval_and_status_shows_their_age(redis):
    clock = ManualClock(NOW)
    beats = Heartbeats(redis, clock=clock, min_interval=15)
    assert beats.beat(WORKER) and not beats.beat(WORKER)
    clock.advance(15)
    assert beats.beat(WORKER)
    clock.advance(40)
    assert beats.last_seen() == {WORKER: NOW.timestamp() + 15, BEAT: None, RECEIVER: None}
    assert beats.status()[WORKER]["last_seen_seconds_ago"] == 40.0
    with pytest.raises(ValueError):
        beats.beat("flower")


def test_two_evaluators_racing_send_one_message(redis):
    condition = Condition(key="failures:3", kind=FAILURES, title="connection 3: 50 records failed", detail="...",
                          fix="connector replay 3 --failed", connection_id=3, records=50)
    sent: list[dict] = []
    inside = threading.Event()
    release = threading.Event()

    def slow_send(message: dict) -> None:  # holds the first evaluator inside its tick while the second arrives
        sent.append(message)
        inside.set()
        release.wait(10)

    books = [IncidentBook(redis), IncidentBook(redis)]
    reports = [None, None]

    def run(i: int) -> None:
        reports[i] = books[i].tick([condition], now=NOW, channels={"webhook": slow_send}, quiet_period=3600)

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert inside.wait(10)
    run(1)  # the second evaluator, while the first still sends
    release.set()
    first.join(10)
    assert reports[1].ran is False and reports[0].sent == [("opened", "failures:3")]
    # And one arriving afterwards finds the incident already announced.
    later = books[1].tick([condition], now=NOW + timedelta(minutes=1), channels={"webhook": slow_send},
                          quiet_period=3600)
    assert later.ran and later.sent == [] and later.open == ["failures:3"]
    assert len(sent) == 1


def test_the_receiver_beats_on_a_request_and_a_failing_heartbeat_fails_no_request(redis):
    from webhooks import create_app

    class Channels:
        def verify(self, channel_id, token):
            return None

    clock = ManualClock(NOW)
    beats = Heartbeats(redis, clock=clock)

    def broken() -> None:
        raise ConnectionError("redis down")

    app = create_app(webhook_key="k", enqueue=lambda *args: None, zoho_channels=Channels(), liveness={},
                     heartbeat=lambda: beats.beat(RECEIVER))
    assert app.test_client().get("/healthz").status_code == 200
    assert beats.last_seen()[RECEIVER] == NOW.timestamp()
    broken_app = create_app(webhook_key="k", enqueue=lambda *args: None, zoho_channels=Channels(), liveness={},
                            heartbeat=broken)
    assert broken_app.test_client().get("/healthz").status_code == 200


def test_an_incident_one_channel_announced_is_resolved_there_and_one_nobody_heard_of_is_dropped(redis):
    condition = Condition(key="silent:worker", kind=SILENT, title="the worker is silent", detail="...",
                          fix="connector worker")
    got: dict[str, list[str]] = {"webhook": [], "email": []}
    down = {"webhook"}

    def channel(name: str):
        def send(message: dict) -> None:
            if name in down:
                raise ConnectionError("refused")
            got[name].append(message["event"])
        return send

    channels = {"webhook": channel("webhook"), "email": channel("email")}
    book = IncidentBook(redis)
    assert book.tick([condition], now=NOW, channels=channels, quiet_period=3600).failed == [
        ("opened", "silent:worker", "webhook")]
    down.clear()
    book.tick([], now=NOW + timedelta(minutes=1), channels=channels, quiet_period=3600)
    assert got == {"webhook": ["resolved"], "email": ["opened", "resolved"]}
    assert book.open_incidents() == {}

    down.update(channels)  # nobody hears of the next one before it clears: nothing to resolve
    book.tick([condition], now=NOW + timedelta(minutes=2), channels=channels, quiet_period=3600)
    down.clear()
    book.tick([], now=NOW + timedelta(minutes=3), channels=channels, quiet_period=3600)
    assert got == {"webhook": ["resolved"], "email": ["opened", "resolved"]} and book.open_incidents() == {}
