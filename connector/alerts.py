"""Alerts: one message per incident, when it opens and when it clears.

Three parts, each testable on its own:

- ``evaluate(facts, thresholds)`` is pure: what the connector already stores (``Facts``, read by
  ``gather_facts`` from the store, Redis and the day-budget ledger, never from Xero or Zoho) in, the
  conditions that hold now out, one per condition and connection (``Condition.key``), each with what
  happened, since when, how many records and the one command or console page that fixes it.
- ``IncidentBook`` keeps the incidents in Redis, so every evaluating process (beat, a worker) agrees:
  a condition that appears opens an incident and sends "opened"; while it holds nothing more is sent
  until the quiet period has passed (then one reminder per quiet period); when it clears, one
  "resolved". A tick runs under a Redis lock, so of two evaluators racing, one sends. A message a
  channel failed to take stays pending for that channel and is sent again next tick.
- ``connector/alert_delivery.py`` sends a message to the webhook and/or by e-mail.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from connector.channels import RENEW_BEFORE
from connector.errors import reconnect_command
from connector.heartbeats import WATCHED_ROLES
from connector.receiver_probe import NEVER_REACHABLE, ProbeState
from connector.redaction import redact_text

log = logging.getLogger("connector.alerts")

NEEDS_REAUTH = "needs_reauth"
CHANNEL_NOT_RENEWED = "zoho_channel_not_renewed"
FAILURES = "failures"
BUDGET = "xero_budget"
PARKED = "parked_work"
SILENT = "silent"
RECEIVER_UNREACHABLE = "receiver_unreachable"
KINDS = (NEEDS_REAUTH, CHANNEL_NOT_RENEWED, FAILURES, BUDGET, PARKED, SILENT, RECEIVER_UNREACHABLE)

OPENED, REMINDER, RESOLVED, TEST = "opened", "reminder", "resolved", "test"

# Channel renewal runs every 30 minutes once less than RENEW_BEFORE is left: a channel still inside that
# margin this long after it entered it missed two renewals, which is a failure, not a renewal due.
CHANNEL_RENEWAL_GRACE = timedelta(hours=1)
FAILURE_WINDOW = timedelta(hours=1)
# An open incident of a count near its threshold clears only well below it: a steady trickle of failures
# (or calls) around the threshold would otherwise open and resolve it every few minutes.
FAILURES_CLEAR_SHARE = 0.5
BUDGET_CLEAR_SHARE = 0.9
PARKED_FOR_A_PERSON = "needs_reauth"  # parked work of a lost grant is the re-authorisation incident's


@dataclass(frozen=True)
class Thresholds:
    failures_per_hour: int = 10
    parked_age: float = 6 * 3600.0
    quiet_period: float = 4 * 3600.0
    silence: float = 600.0

    @classmethod
    def of(cls, settings) -> "Thresholds":
        return cls(failures_per_hour=settings.alert_failures_per_hour, parked_age=settings.alert_parked_age,
                   quiet_period=settings.alert_quiet_period, silence=settings.alert_silence)


@dataclass(frozen=True)
class ConnectionFacts:
    id: int
    name: str
    state: str = "active"
    state_reason: str | None = None
    state_since: datetime | None = None
    parked_for_reauth: int = 0
    channel_expiries: tuple[datetime, ...] = ()
    failures_last_hour: dict[str, int] = field(default_factory=dict)  # by error class
    parked_old: dict[str, int] = field(default_factory=dict)  # older than the threshold, by reason
    parked_oldest: datetime | None = None
    budget_day_limit: int = 0
    budget_used_today: int = 0
    budget_projected_today: int = 0


@dataclass(frozen=True)
class Facts:
    now: datetime
    connections: tuple[ConnectionFacts, ...] = ()
    heartbeats: dict[str, float | None] = field(default_factory=dict)  # role -> epoch seconds of its last beat
    public_url: str = ""
    open_incidents: frozenset[str] = frozenset()  # keys of the incidents open now (IncidentBook)
    # Since when the evaluating process (beat) has been watching: a role never seen for longer than the
    # silence threshold since then never started (a worker not scaled up, crashing at start).
    watching_since: datetime | None = None
    # What the receiver probe saw at the public URL (connector/receiver_probe.py); None: not probed here.
    receiver: ProbeState | None = None
    receiver_url: str = ""


@dataclass(frozen=True)
class Condition:
    key: str  # one incident per key: the condition and its connection (or process role)
    kind: str
    title: str
    detail: str
    fix: str  # the one command, or the console page, that fixes it
    connection_id: int | None = None
    since: datetime | None = None
    records: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = _iso(self.since)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Condition":
        return cls(**{**data, "since": datetime.fromisoformat(data["since"]) if data.get("since") else None})


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


def reauth_system(reason: str | None) -> str:
    """Which grant a needs_reauth connection lost, from the reason its refusal recorded (the errors of
    connector/xero and connector/zoho name their vendor); Xero when it does not say."""
    return "zoho" if "zoho" in (reason or "").lower() else "xero"


def _who(c: ConnectionFacts) -> str:
    return f"connection {c.id} ({c.name})" if c.name else f"connection {c.id}"


def evaluate(facts: Facts, thresholds: Thresholds) -> list[Condition]:
    """Every condition that holds now, in a stable order. Pure: facts in, conditions out."""
    found: list[Condition] = []
    # The operator console's pages (webhooks/console): its connections page shows each connection's budget
    # and parked work; its failures page takes the connection as a filter.
    console = facts.public_url.rstrip("/") + "/console"
    for c in facts.connections:
        if c.state == "disabled":
            continue
        if c.state == NEEDS_REAUTH:
            system = reauth_system(c.state_reason)
            found.append(Condition(
                key=f"{NEEDS_REAUTH}:{c.id}", kind=NEEDS_REAUTH, connection_id=c.id, since=c.state_since,
                records=c.parked_for_reauth,
                title=f"{_who(c)} needs re-authorising in {system.capitalize()}",
                detail=(f"{redact_text(c.state_reason or 'the grant was refused')}. Its work is parked, not lost "
                        f"({c.parked_for_reauth} records), and resumes by itself after the reconnect."),
                fix=reconnect_command(system, [c.id])))
            continue  # the rest (channels, failures, budget) follow from the lost grant
        renew_by = facts.now + RENEW_BEFORE - CHANNEL_RENEWAL_GRACE
        late = sorted(e for e in c.channel_expiries if e <= renew_by)
        if late:  # a channel exists only once Zoho was connected
            expired = late[0] <= facts.now
            found.append(Condition(
                key=f"{CHANNEL_NOT_RENEWED}:{c.id}", kind=CHANNEL_NOT_RENEWED, connection_id=c.id,
                since=late[0] - RENEW_BEFORE,
                title=f"{_who(c)}: the Zoho notification channel could not be renewed",
                detail=(f"it {'expired' if expired else 'expires'} at {_iso(late[0])}; "
                        + ("Zoho edits are not notified until it is re-created (the gap is reconciled then)"
                           if expired else "renewal keeps failing; once it lapses Zoho edits wait for its re-creation")),
                fix=reconnect_command("zoho", [c.id])))
        failing = sum(c.failures_last_hour.values())
        failures_key = f"{FAILURES}:{c.id}"
        failures_bar = (max(1, int(thresholds.failures_per_hour * FAILURES_CLEAR_SHARE))
                        if failures_key in facts.open_incidents else thresholds.failures_per_hour)
        if failing >= failures_bar:
            classes = ", ".join(f"{name} {n}" for name, n in sorted(c.failures_last_hour.items(), key=lambda i: -i[1]))
            found.append(Condition(
                key=failures_key, kind=FAILURES, connection_id=c.id, records=failing,
                title=f"{_who(c)}: {failing} records failed in the last hour",
                detail=(f"still failing, by error: {classes}; the threshold is {thresholds.failures_per_hour} an "
                        f"hour. Details: {console}/failures?connection={c.id}"),
                fix=f"connector replay {c.id} --failed"))
        budget_key = f"{BUDGET}:{c.id}"
        budget_bar = c.budget_day_limit * (BUDGET_CLEAR_SHARE if budget_key in facts.open_incidents else 1)
        if c.budget_day_limit and c.budget_projected_today >= budget_bar:
            found.append(Condition(
                key=budget_key, kind=BUDGET, connection_id=c.id,
                title=f"{_who(c)}: the Xero day budget is projected to run out before the day ends",
                detail=(f"{c.budget_used_today} of {c.budget_day_limit} calls used, {c.budget_projected_today} "
                        "projected at the recent rate; past the limit Xero refuses calls until its day resets "
                        "and the connector parks that work until then. The console shows the calls by purpose "
                        "and the deferred work"),
                fix=f"{console}/"))
        parked = sum(c.parked_old.values())
        if parked:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(c.parked_old.items()))
            found.append(Condition(
                key=f"{PARKED}:{c.id}", kind=PARKED, connection_id=c.id, records=parked, since=c.parked_oldest,
                title=f"{_who(c)}: {parked} records parked for more than {_duration(thresholds.parked_age)}",
                detail=(f"waiting for: {reasons}. Most parked work resumes by itself once its wait is over; the "
                        "console shows it by reason"),
                fix=f"{console}/"))
    for role in WATCHED_ROLES:
        seen = facts.heartbeats.get(role)
        if seen is None:
            # Never seen: not an incident while the evaluator itself has just started (a first deploy starts
            # its processes side by side; the embedded mode has no separate beat and passes no start), but
            # one once it has watched for longer than the silence threshold.
            watching = facts.watching_since
            if watching is None or (facts.now - watching).total_seconds() <= thresholds.silence:
                continue
            found.append(Condition(
                key=f"{SILENT}:{role}", kind=SILENT, since=watching,
                title=f"no {role} has run: no heartbeat since {_iso(watching)}, when beat started watching",
                detail=(f"a {role} has never sent a heartbeat to this Redis; check that its process is deployed "
                        "(scaled up) and that its log shows it starting"),
                fix=f"connector {role}"))
            continue
        if facts.now.timestamp() - seen <= thresholds.silence:
            continue
        last = datetime.fromtimestamp(seen, tz=timezone.utc)
        found.append(Condition(
            key=f"{SILENT}:{role}", kind=SILENT, since=last,
            title=f"the {role} is silent: no heartbeat for {_duration(facts.now.timestamp() - seen)}",
            detail=(f"last heartbeat {_iso(last)}; "
                    + ("nothing is synced while no worker runs; queued work waits in the broker"
                       if role == "worker" else "no scheduled work runs (token refresh, polls, parked work)")),
            fix=f"connector {role}"))
    receiver = _receiver_unreachable(facts, thresholds)
    if receiver is not None:
        found.append(receiver)
    return found


def _receiver_unreachable(facts: Facts, thresholds: Thresholds) -> Condition | None:
    """The receiver not answering at its public URL for the silence threshold: what Xero and Zoho reach. The
    receiver's heartbeat cannot say it (the receiver is idle whenever no webhook arrives); the probe asks every
    minute, through the same DNS, TLS and proxy as Xero."""
    probe = facts.receiver
    if probe is None or probe.down_since is None:
        return None
    down_for = facts.now.timestamp() - probe.down_since
    if down_for <= thresholds.silence:
        return None
    url, since = facts.receiver_url, datetime.fromtimestamp(probe.down_since, tz=timezone.utc)
    if probe.state == NEVER_REACHABLE:
        return Condition(
            key=RECEIVER_UNREACHABLE, kind=RECEIVER_UNREACHABLE, since=since,
            title=f"the receiver has never answered at its public URL {url}",
            detail=(f"{probe.failures} probes since {_iso(since)} failed (last: {probe.last_error}). Check that "
                    "CONNECTOR_PUBLIC_URL is the address Xero and Zoho deliver to, that it resolves and its TLS "
                    "certificate is valid, that the web process runs, and that the workers may reach it "
                    "(CONNECTOR_RECEIVER_PROBE=off where they cannot by design)"),
            fix=f"curl -fsS {url}")
    last_ok = datetime.fromtimestamp(probe.last_ok, tz=timezone.utc) if probe.last_ok is not None else since
    return Condition(
        key=RECEIVER_UNREACHABLE, kind=RECEIVER_UNREACHABLE, since=since,
        title=f"the receiver is unreachable at {url}: no answer for {_duration(down_for)}",
        detail=(f"last answered {_iso(last_ok)}; last error {probe.last_error}. Xero retries its deliveries for up "
                "to 24 hours, then disables the webhook; once the receiver answers again a catch-up poll fetches "
                "what was missed"),
        fix=f"restart the web process, then curl -fsS {url}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{max(seconds // 60, 1)} min"


# -- messages --------------------------------------------------------------------------------------


# Slack truncates a message's text past 40,000 characters and recommends at most 4,000
# (https://api.slack.com/methods/chat.postMessage#truncating); a mail subject (the first line) is best kept short.
# A vendor's refusal text or an organisation's name can be any length: the detail is cut, never the fix.
MESSAGE_MAX_CHARS = 3500
TITLE_MAX_CHARS = 200
FIX_MAX_CHARS = 500


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def message(event: str, condition: Condition, *, opened_at: datetime, now: datetime) -> dict[str, Any]:
    """What every channel sends: a line of text and the same facts as fields, within MESSAGE_MAX_CHARS."""
    since = condition.since or opened_at
    headline = {OPENED: "OPEN", REMINDER: "STILL OPEN", RESOLVED: "RESOLVED", TEST: "TEST"}[event]
    title, fix = _clip(condition.title, TITLE_MAX_CHARS), _clip(condition.fix, FIX_MAX_CHARS)
    lines = [f"[ml-connector] {headline}: {title}"]
    detail = _clip(condition.detail, MESSAGE_MAX_CHARS - TITLE_MAX_CHARS - FIX_MAX_CHARS)
    if event == RESOLVED:
        lines.append(f"Cleared at {_iso(now)} (open since {_iso(since)}).")
    else:
        lines.append(f"Since {_iso(since)}"
                     + (f"; {condition.records} records" if condition.records is not None else "") + ".")
        room = MESSAGE_MAX_CHARS - len("\n".join([*lines, f"Fix: {fix}"])) - 1
        detail = _clip(detail, room)
        lines += [detail, f"Fix: {fix}"]
    incident = {**condition.as_dict(), "title": title, "detail": detail, "fix": fix, "since": _iso(since)}
    return {"text": "\n".join(lines), "event": event, "incident": incident, "at": _iso(now)}


def test_message(now: datetime) -> dict[str, Any]:
    condition = Condition(key="test", kind=TEST, title="a test message from `connector alerts test`",
                          detail="Alerts reach this channel.", fix="nothing to fix")
    return message(TEST, condition, opened_at=now, now=now)


# -- incidents -------------------------------------------------------------------------------------


@dataclass
class TickReport:
    ran: bool  # False when another evaluator held the lock
    open: list[str] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (event, incident key) fully delivered
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (event, key, channel) left for next tick


Send = Callable[[dict], None]  # raises on failure


class IncidentBook:
    """Incidents in Redis: one hash per incident key, a set of the open keys, one lock per tick."""

    def __init__(self, redis: Any, *, prefix: str = "connector:alerts", lock_seconds: float = 120.0) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lock_seconds = lock_seconds

    def _key(self, incident: str) -> str:
        return f"{self._prefix}:incident:{incident}"

    @property
    def _open_key(self) -> str:
        return f"{self._prefix}:open"

    def open_incidents(self) -> dict[str, dict]:
        keys = sorted(_text(k) for k in self._redis.smembers(self._open_key))
        return {k: self._load(k) for k in keys}

    def _load(self, incident: str) -> dict:
        raw = self._redis.hgetall(self._key(incident))
        return {_text(k): _text(v) for k, v in raw.items()}

    def tick(self, conditions: Iterable[Condition], *, now: datetime, channels: dict[str, Send],
             quiet_period: float) -> TickReport:
        """Bring the incidents in line with ``conditions`` and send what that calls for, under a lock:
        a second evaluator arriving meanwhile does nothing (the next tick sees the state this one left)."""
        lock = self._redis.lock(f"{self._prefix}:lock", timeout=self._lock_seconds, blocking=False)
        if not lock.acquire(blocking=False):
            return TickReport(ran=False)
        try:
            return self._tick(list(conditions), now, channels, quiet_period)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: the next holder's lock is not ours to drop
                pass

    def _tick(self, conditions: list[Condition], now: datetime, channels: dict[str, Send],
              quiet_period: float) -> TickReport:
        report = TickReport(ran=True)
        stamp = now.timestamp()
        names = sorted(channels)
        current = {c.key: c for c in conditions}
        stored = self.open_incidents()
        for key, condition in current.items():
            state = stored.get(key)
            if not state:
                state = {"opened_at": repr(stamp), "pending": OPENED, "pending_channels": json.dumps(names)}
                self._redis.sadd(self._open_key, key)
            elif state.get("pending") == RESOLVED:
                # Back before its "resolved" went out: still the same incident, nothing to say.
                state["pending"], state["pending_channels"] = "", "[]"
            elif not state.get("pending") and now.timestamp() - float(state.get("last_sent") or 0) >= quiet_period:
                state["pending"], state["pending_channels"] = REMINDER, json.dumps(names)
            # The first "since" stays (the incident's start); counts and details follow the latest facts.
            first = Condition.from_dict(json.loads(state["condition"])) if state.get("condition") else condition
            state["condition"] = json.dumps({**condition.as_dict(), "since": _iso(first.since or condition.since)})
            self._redis.hset(self._key(key), mapping=state)
            stored[key] = state
        for key in [k for k in stored if k not in current]:
            state = stored[key]
            if not state.get("announced") and state.get("pending") == OPENED:
                self._close(key)  # no channel took its "opened": nothing to resolve
                del stored[key]
                continue
            if state.get("pending") != RESOLVED:
                state["pending"], state["pending_channels"] = RESOLVED, json.dumps(names)
                self._redis.hset(self._key(key), mapping=state)
        for key, state in stored.items():
            if key in current:
                report.open.append(key)
            if state.get("pending"):
                self._deliver(key, state, now, channels, report)
        return report

    def _deliver(self, key: str, state: dict, now: datetime, channels: dict[str, Send], report: TickReport) -> None:
        event = state["pending"]
        condition = Condition.from_dict(json.loads(state["condition"]))
        body = message(event, condition, opened_at=datetime.fromtimestamp(float(state["opened_at"]), tz=timezone.utc),
                       now=now)
        left, took = [], False
        for name in json.loads(state.get("pending_channels") or "[]"):
            send = channels.get(name)
            if send is None:
                continue  # no longer configured
            try:
                send(body)
                took = True
            except Exception as exc:  # logged, retried next tick; never stops the other channels or incidents
                log.warning("alert.delivery_failed", extra={"alert_event": event, "incident": key, "channel": name,
                                                            "error": redact_text(str(exc)), "retry": "next tick"})
                left.append(name)
                report.failed.append((event, key, name))
        if left:
            self._redis.hset(self._key(key), mapping={"pending_channels": json.dumps(left),
                                                      **({"announced": "1"} if took else {})})
            return
        # A problem opening (or still open) is a warning; its end is an ordinary outcome.
        log.log(logging.INFO if event == RESOLVED else logging.WARNING, "alert.%s", event,
                extra={"incident": key, "kind": condition.kind, "connection_id": condition.connection_id,
                       "records": condition.records, "fix": condition.fix, "summary": condition.title,
                       "channels": sorted(channels)})
        report.sent.append((event, key))
        if event == RESOLVED:
            self._close(key)
        else:
            self._redis.hset(self._key(key), mapping={"pending": "", "pending_channels": "[]", "announced": "1",
                                                       "last_sent": repr(now.timestamp())})

    def _close(self, key: str) -> None:
        self._redis.delete(self._key(key))
        self._redis.srem(self._open_key, key)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- reading the facts -----------------------------------------------------------------------------


def gather_facts(*, store: Any, credentials: Any, budget_ledger: Any, heartbeats: Any, thresholds: Thresholds,
                 public_url: str, watching_since: datetime | None = None, receiver_probe: Any = None) -> Facts:
    """What ``evaluate`` needs, from the store, the ledger, the heartbeats and the receiver probe's state
    (``receiver_probe``: a connector.receiver_probe.ReceiverProbe, None where not probed): a handful of queries
    per connection, no call to Xero or Zoho."""
    from connector.store.parked import NEEDS_REAUTH as PARKED_NEEDS_REAUTH

    now = store.clock.now()
    aged = store.parked.parked_before(now - timedelta(seconds=thresholds.parked_age))
    connections = []
    for c in store.connections.all():
        if c.state == "disabled":
            continue
        reasons, oldest = aged.get(c.id, ({}, None))
        facts: dict[str, Any] = {"id": c.id, "name": c.name, "state": c.state, "state_reason": c.state_reason,
                                 "state_since": c.updated_at}
        if c.state == NEEDS_REAUTH:
            facts["parked_for_reauth"] = store.parked.count(c.id, reason=PARKED_NEEDS_REAUTH)
        else:
            budget = budget_ledger.view(c.id, log_warning=False)
            owner = credentials.owner_of(c.id, "zoho")
            facts.update(
                channel_expiries=tuple(ch.expires_at for ch in store.channels.for_connection(owner)),
                failures_last_hour=store.audit.failure_counts(c.id, now - FAILURE_WINDOW),
                parked_old={r: n for r, n in reasons.items() if r != PARKED_FOR_A_PERSON},
                parked_oldest=oldest if any(r != PARKED_FOR_A_PERSON for r in reasons) else None,
                budget_day_limit=budget.day_limit, budget_used_today=budget.used_today,
                budget_projected_today=budget.projected_today)
        connections.append(ConnectionFacts(**facts))
    return Facts(now=now, connections=tuple(connections), heartbeats=heartbeats.last_seen(), public_url=public_url,
                 watching_since=watching_since,
                 receiver=receiver_probe.load() if receiver_probe is not None else None,
                 receiver_url=receiver_probe.url if receiver_probe is not None else "")


def check_alerts(*, book: IncidentBook, channels: dict[str, Send], thresholds: Thresholds,
                 facts: Callable[[], Facts]) -> TickReport | None:
    """One evaluation: read, evaluate, reconcile, send. Never raises: a failure is one log line and the next
    tick tries again (beat and the worker call this on their own loops)."""
    try:
        current = replace(facts(), open_incidents=frozenset(book.open_incidents()))
        return book.tick(evaluate(current, thresholds), now=current.now, channels=channels,
                         quiet_period=thresholds.quiet_period)
    except Exception as exc:
        log.warning("alert.check_failed", extra={"error": f"{type(exc).__name__}: {redact_text(str(exc))}",
                                                 "retry": "next tick"})
        return None
