"""Alerts end to end on the embedded system with a simulated clock: facts from the real store, incidents in
Redis, messages to a real HTTP server (the webhook) and a real SMTP server (aiosmtpd) in this process."""

from __future__ import annotations

import json
import logging
import socket
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from connector.clock import ManualClock
from connector.heartbeats import BEAT, WORKER
from connector.secret import Secret
from connector.store import audit as stages
from workers.beat_schedule import beat_alive_and_check_alerts
from workers.cli import main

WEBHOOK_SECRET = "T000/B000/hook-secret-part"
SMTP_PASSWORD = "smtp-password-never-shown"


class WebhookCatcher:
    """A real HTTP server taking the webhook's JSON; ``refuse`` answers the next n posts with a 500."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.refuse = 0
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if catcher.refuse:
                    catcher.refuse -= 1
                    self.send_response(500)
                else:
                    catcher.bodies.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{WEBHOOK_SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, str]]:
        return [(b["event"], b["incident"]["key"]) for b in self.bodies]


class MailCatcher:
    """A real SMTP server (aiosmtpd) that asks for a login and keeps every message it is sent."""

    def __init__(self) -> None:
        self.messages: list = []
        self.logins: list[tuple[bytes, bytes]] = []
        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                catcher.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            catcher.logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=auth_data.password == SMTP_PASSWORD.encode())

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticate,
                                     auth_require_tls=False)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@pytest.fixture
def catchers():
    webhook, mail = WebhookCatcher(), MailCatcher()
    yield webhook, mail
    webhook.server.shutdown()
    mail.controller.stop()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def alerting(make_system, catchers, clock):
    webhook, mail = catchers
    return make_system(clock=clock, alert_webhook=Secret(webhook.url), smtp_host="127.0.0.1", smtp_port=mail.port,
                       smtp_from="connector@example.com", smtp_to=("ops@example.com",), smtp_user="mailer",
                       smtp_password=Secret(SMTP_PASSWORD), smtp_starttls=False,
                       public_url="https://connector.example.com")


def processes_alive(deps) -> None:
    deps.heartbeats.beat(WORKER)
    deps.heartbeats.beat(BEAT)


def fail_records(deps, connection_id: int, count: int, *, prefix: str = "inv") -> None:
    for i in range(count):
        deps.store.audit.record(connection_id=connection_id, record_type="invoice", record_id=f"{prefix}-{i}",
                                stage=stages.FAILED, detail={"reason": "Zoho refused", "error_code": "DUPLICATE_DATA"})


def test_many_failing_records_are_one_message_on_each_channel_then_one_resolved(alerting, catchers, clock, caplog):
    webhook, mail = catchers
    deps, cid = alerting.deps, alerting.connection_id
    processes_alive(deps)
    fail_records(deps, cid, 40)
    with caplog.at_level(logging.INFO):
        report = deps.check_alerts()
        for _ in range(5):  # later ticks while it stays open, within the quiet period
            clock.advance(60)
            processes_alive(deps)
            deps.check_alerts()
    assert report.sent == [("opened", f"failures:{cid}")]
    assert webhook.events() == [("opened", f"failures:{cid}")]
    [opened] = webhook.bodies
    assert opened["incident"]["records"] == 40 and opened["incident"]["fix"] == f"connector replay {cid} --failed"
    assert "40 records failed in the last hour" in opened["text"] and f"connector replay {cid} --failed" in opened["text"]
    assert "Since 2026-01-05T09:00:00+00:00" in opened["text"]
    assert mail.subjects() == [opened["text"].splitlines()[0]]
    assert mail.logins == [(b"mailer", SMTP_PASSWORD.encode())]
    assert mail.messages[0]["To"] == "ops@example.com"

    # The records are replayed and written: the incident clears, one "resolved" on each channel, once.
    for i in range(40):
        deps.store.audit.record(connection_id=cid, record_type="invoice", record_id=f"inv-{i}", stage=stages.WRITTEN)
    for _ in range(3):
        clock.advance(60)
        processes_alive(deps)
        deps.check_alerts()
    assert webhook.events() == [("opened", f"failures:{cid}"), ("resolved", f"failures:{cid}")]
    assert len(mail.messages) == 2 and mail.subjects()[1].startswith("[ml-connector] RESOLVED")
    everything = json.dumps(webhook.bodies) + "".join(m.as_string() for m in mail.messages) + caplog.text
    assert WEBHOOK_SECRET not in everything and SMTP_PASSWORD not in everything


def test_a_healthy_day_of_ticks_sends_nothing(alerting, catchers, clock):
    webhook, mail = catchers
    deps, cid = alerting.deps, alerting.connection_id
    fail_records(deps, cid, 3)  # a few failures: below the threshold, as on an ordinary day
    for _ in range(24 * 2):  # a tick every half hour for a day (each tick reads everything, as beat's do)
        processes_alive(deps)
        report = deps.check_alerts()
        assert report.ran and report.open == []
        clock.advance(1800)
    assert webhook.bodies == [] and mail.messages == []


def test_quiet_period_then_one_reminder_and_a_silent_worker(alerting, catchers, clock):
    webhook, mail = catchers
    deps = alerting.deps
    quiet = deps.settings.alert_quiet_period
    processes_alive(deps)
    clock.advance(deps.settings.alert_silence + 60)
    deps.heartbeats.beat(BEAT)  # beat goes on, the worker stopped beating
    deps.check_alerts()
    assert webhook.events() == [("opened", "silent:worker")]
    assert "Fix: connector worker" in webhook.bodies[0]["text"]
    elapsed = 0.0
    while elapsed < quiet - 600:  # ticks within the quiet period: nothing more
        clock.advance(600)
        elapsed += 600
        deps.heartbeats.beat(BEAT)
        deps.check_alerts()
    assert len(webhook.bodies) == 1
    clock.advance(600)
    deps.heartbeats.beat(BEAT)
    deps.check_alerts()
    deps.check_alerts()
    assert webhook.events() == [("opened", "silent:worker"), ("reminder", "silent:worker")]
    assert webhook.bodies[1]["text"].startswith("[ml-connector] STILL OPEN")
    deps.heartbeats.beat(WORKER)  # the worker is back
    deps.check_alerts()
    assert webhook.events()[-1] == ("resolved", "silent:worker") and len(mail.messages) == 3


def test_a_failed_delivery_is_logged_once_and_sent_next_tick_to_that_channel_only(alerting, catchers, clock, caplog):
    webhook, mail = catchers
    deps, cid = alerting.deps, alerting.connection_id
    processes_alive(deps)
    deps.store.connections.mark_needs_reauth(cid, "Xero token refresh: invalid_grant (refresh token revoked)")
    webhook.refuse = 1
    with caplog.at_level(logging.WARNING, logger="connector.alerts"):
        report = deps.check_alerts()
    assert report.failed == [("opened", f"needs_reauth:{cid}", "webhook")] and report.sent == []
    [line] = [r for r in caplog.records if r.getMessage() == "alert.delivery_failed"]
    assert line.error == "webhook at 127.0.0.1: HTTP 500" and WEBHOOK_SECRET not in caplog.text
    assert len(mail.messages) == 1  # e-mail took it
    clock.advance(60)
    processes_alive(deps)
    assert deps.check_alerts().sent == [("opened", f"needs_reauth:{cid}")]
    assert webhook.events() == [("opened", f"needs_reauth:{cid}")] and len(mail.messages) == 1
    assert "connector connect xero" in webhook.bodies[0]["text"]


class BeatScheduler:
    """What beat_alive_and_check_alerts keeps on the scheduler (workers/beat_schedule.DataDirScheduler)."""
    _alerts_checked_at = None
    _alerts_thread = None
    _watching_since = None


def test_beat_reports_a_worker_that_never_started_once_it_has_watched_longer_than_the_silence(alerting, catchers,
                                                                                              clock):
    webhook, _ = catchers
    deps = alerting.deps
    scheduler = BeatScheduler()
    started = clock.time()
    while clock.time() - started <= deps.settings.alert_silence:  # no worker anywhere, yet: it may be starting
        beat_alive_and_check_alerts(scheduler)
        clock.advance(60)
    assert webhook.events() == []
    beat_alive_and_check_alerts(scheduler)
    assert webhook.events() == [("opened", "silent:worker")]
    assert "connector worker" in webhook.bodies[0]["text"]
    deps.heartbeats.beat(WORKER)  # the worker starts
    clock.advance(60)
    beat_alive_and_check_alerts(scheduler)
    assert webhook.events()[-1] == ("resolved", "silent:worker")


def test_beat_ticks_write_its_heartbeat_and_evaluate_once_a_minute(alerting, catchers, clock):
    webhook, _ = catchers
    deps, cid = alerting.deps, alerting.connection_id
    deps.heartbeats.beat(WORKER)
    fail_records(deps, cid, 12)

    scheduler = BeatScheduler()
    beat_alive_and_check_alerts(scheduler)
    assert deps.heartbeats.last_seen()[BEAT] == clock.time()
    assert webhook.events() == [("opened", f"failures:{cid}")]
    deps.store.audit.record(connection_id=cid, record_type="invoice", record_id="inv-0", stage=stages.WRITTEN)
    for i in range(11):
        deps.store.audit.record(connection_id=cid, record_type="invoice", record_id=f"inv-{i + 1}", stage=stages.WRITTEN)
    clock.advance(30)
    beat_alive_and_check_alerts(scheduler)  # half a minute: no evaluation yet
    assert len(webhook.bodies) == 1
    clock.advance(30)
    beat_alive_and_check_alerts(scheduler)
    assert webhook.events()[-1] == ("resolved", f"failures:{cid}")


def test_connector_alerts_test_sends_to_both_channels(alerting, catchers, capsys):
    webhook, mail = catchers
    assert main(["alerts", "test"]) == 0
    assert capsys.readouterr().out.splitlines() == ["email: sent", "webhook: sent"]
    assert webhook.bodies[0]["event"] == "test" and webhook.bodies[0]["text"].startswith("[ml-connector] TEST")
    assert mail.subjects() == [webhook.bodies[0]["text"].splitlines()[0]]
    assert main(["alerts", "check"]) == 0
    assert "no open incident" in capsys.readouterr().out


def test_connector_alerts_test_says_what_failed(make_system, capsys):
    system = make_system(alert_webhook=Secret(f"http://127.0.0.1:9/{WEBHOOK_SECRET}"))  # nothing listens
    assert system.deps.alert_channels
    assert main(["alerts", "test"]) == 1
    err = capsys.readouterr().err
    assert "webhook: NOT sent: webhook at 127.0.0.1: ConnectionError" in err and WEBHOOK_SECRET not in err


def test_status_shows_heartbeats_and_open_alerts(alerting, clock):
    from connector.status import collect_status

    deps, cid = alerting.deps, alerting.connection_id
    processes_alive(deps)
    fail_records(deps, cid, 10)
    deps.check_alerts()
    clock.advance(5)
    status = collect_status(deps)
    assert status["heartbeats"][WORKER]["last_seen_seconds_ago"] == 5.0
    assert status["heartbeats"]["receiver"]["last_seen_seconds_ago"] is None
    [alert] = status["alerts"]
    assert alert["incident"] == f"failures:{cid}" and alert["records"] == 10 and not alert["resolving"]


def test_the_worker_reports_a_silent_beat_and_stays_quiet_while_beat_runs(alerting, catchers, clock):
    from workers import heartbeat_signals

    webhook, _ = catchers
    deps = alerting.deps
    heartbeat_signals._state["beat_checked_at"] = None
    deps.heartbeats.beat(BEAT)
    heartbeat_signals.worker_alive()  # beat is alive: the worker only beats, beat does the evaluating
    assert deps.heartbeats.last_seen()[WORKER] == clock.time() and webhook.bodies == []
    assert deps.incident_book.open_incidents() == {}
    clock.advance(deps.settings.alert_silence + 60)
    heartbeat_signals.worker_alive()
    assert webhook.events() == [("opened", "silent:beat")] and "Fix: connector beat" in webhook.bodies[0]["text"]


def test_old_parked_work_and_a_channel_not_renewed_read_from_the_store(alerting, catchers, clock):
    from datetime import timedelta

    from connector.store.parked import NEEDS_REAUTH, OUTAGE

    webhook, _ = catchers
    deps, cid = alerting.deps, alerting.connection_id
    deps.store.parked.park(cid, "invoices", ["inv-1", "inv-2", "inv-3"], reason=OUTAGE)
    deps.store.parked.park(cid, "contacts", ["c-1"], reason=NEEDS_REAUTH)  # the reconnect incident's, not this one's
    deps.store.channels.save(cid, "1234567890123456", token="t", events=["Contacts.edit"],
                             expires_at=clock.now() + timedelta(days=3))
    processes_alive(deps)
    deps.check_alerts()
    assert webhook.bodies == []  # parked a moment ago, the channel fresh enough
    clock.advance(timedelta(hours=25))  # the channel is now inside its margin, past the renewals' hour
    deps.store.parked.park(cid, "invoices", ["inv-9"], reason=OUTAGE)  # new: too young to count
    processes_alive(deps)
    deps.check_alerts()
    assert sorted(webhook.events()) == [("opened", f"parked_work:{cid}"), ("opened", f"zoho_channel_not_renewed:{cid}")]
    parked = next(b for b in webhook.bodies if b["incident"]["kind"] == "parked_work")
    assert parked["incident"]["records"] == 3 and "waiting for: outage 3" in parked["text"]
    assert parked["incident"]["fix"] == "https://connector.example.com/console/"
    assert "Since 2026-01-05T09:00:00+00:00" in parked["text"]


def test_a_day_budget_projected_to_run_out_from_the_ledger_then_the_next_day(make_system, catchers, clock):
    from connector.http import ResponseSeen

    webhook, _ = catchers
    system = make_system(clock=clock, alert_webhook=Secret(webhook.url), xero_default_day_limit=300,
                         public_url="https://connector.example.com")
    deps, cid = system.deps, system.connection_id
    processes_alive(deps)
    for _ in range(120):  # an hour's burst of live work: at this rate the day's 300 calls run out by noon
        deps.budget_ledger.record(ResponseSeen(vendor="xero", connection_id=cid, method="GET",
                                               endpoint="/api.xro/2.0/Contacts", status=200, bytes_received=100,
                                               purpose="webhook_fetch"))
    deps.check_alerts()
    assert webhook.events() == [("opened", f"xero_budget:{cid}")]
    assert "120 of 300 calls used" in webhook.bodies[0]["text"]
    assert webhook.bodies[0]["incident"]["fix"] == "https://connector.example.com/console/"
    clock.advance(26 * 3600)  # a new Xero day, nothing spent yet
    processes_alive(deps)
    deps.check_alerts()
    assert webhook.events() == [("opened", f"xero_budget:{cid}"), ("resolved", f"xero_budget:{cid}")]
