"""The receiver probe: every minute a worker GETs ``{CONNECTOR_PUBLIC_URL}/healthz``, the public route Xero's
deliveries take, and keeps what it saw in Redis (every host reads the same answer).

Why: contacts, invoices and credit notes arrive by webhook, and Xero retries a delivery not answered 200 for up
to 24 hours, then disables the subscription and never sends those events again
(https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/). A receiver outage with no
write-back during it (so no missing echo) that outlasts the retries leaves no other trace; the probe sees it
directly. When the receiver answers again after an outage that counts (``ProbePolicy``: at least two failed
probes, the first at least 90 s before the recovery; or probes that stopped for over 10 minutes, so nothing was
seen of the receiver meanwhile), one catch-up is owed to every active connection: the task
raises the schedule's ``RECEIVER_OUTAGE`` trigger (connector/xero_schedule.py), and the next planner tick runs
the catch-up within the day's budget. One trigger per outage, not per probe.

A receiver that has never answered since probing began (a wrong public URL, or workers that cannot reach it) is
reported (status, one WARNING line, an alert incident), never polled for: nothing says a delivery was missed.

Two parts: ``observe`` is pure (the state, one probe's result and the time in; the next state and what changed
out); ``ReceiverProbe`` makes the GET (plain ``requests``: our own URL, not a vendor's) and keeps the state in
one Redis hash, updated under WATCH so that two probes racing record one transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis as redis_lib
import requests

from connector.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("connector.receiver_probe")

HEALTH_PATH = "/healthz"
HOUR = 3600.0
DEFAULT_KEY = "connector:receiver-probe"

REACHABLE, UNREACHABLE, NEVER_REACHABLE, NOT_PROBED_YET, NOT_PROBED = (
    "reachable", "unreachable", "never_reachable", "not_probed_yet", "not_probed")


@dataclass(frozen=True)
class ProbePolicy:
    timeout: float = 5.0  # seconds for the GET; the receiver answers /healthz from Redis and the database
    # An outage counts (and owes a catch-up) after this many consecutive failed probes...
    outage_failures: int = 2
    # ...the first of them at least this long before the probe that found the receiver back. A single failed
    # probe, or two a moment apart (a retried task), is a blip: Xero's retries cover it.
    outage_grace: float = 90.0
    # Past this, Xero may have disabled the webhook subscription (its retries last up to 24 hours).
    xero_retry_window: float = 24 * HOUR
    # Probes that stopped for longer than this (no worker or beat ran them: a host down with everything on it)
    # saw nothing of the receiver meanwhile: the first answer after such a gap owes a catch-up too. A deploy
    # restarting beat or the workers stays well inside it.
    blind_gap: float = 600.0


@dataclass(frozen=True)
class ProbeState:
    """What the probes saw (epoch seconds; None: never)."""

    first_probe: float | None = None
    last_probe: float | None = None
    last_ok: float | None = None
    up_since: float | None = None  # the first probe answered since the last failure
    down_since: float | None = None  # the first failed probe of the current run of failures
    # The last probe before a blind gap, while the receiver has not answered since: it may have been down since.
    unseen_since: float | None = None
    failures: int = 0  # consecutive failed probes
    last_error: str | None = None  # its type only (http_503, ConnectTimeout...): never a message
    reported: bool = False  # the current outage (or never having answered) was logged
    # The last outage that counted: its first failed probe, the probe that found the receiver back.
    outage_from: float | None = None
    outage_to: float | None = None
    # When an outage that counted ended and its catch-up triggers were not raised yet (cleared once they are;
    # kept through a task that died in between, so the next probe raises them).
    catch_up_owed: float | None = None

    @property
    def state(self) -> str:
        if self.last_probe is None:
            return NOT_PROBED_YET
        if self.down_since is None:
            return REACHABLE
        return UNREACHABLE if self.last_ok is not None else NEVER_REACHABLE

    def to_redis(self) -> dict[str, str]:
        return {f.name: _encode(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_redis(cls, raw: dict) -> "ProbeState":
        values = {_text(k): _text(v) for k, v in raw.items()}
        parsed: dict[str, Any] = {}
        for f in fields(cls):
            value = values.get(f.name, "")
            if f.name == "failures":
                parsed[f.name] = int(value or 0)
            elif f.name == "reported":
                parsed[f.name] = value == "1"
            elif f.name == "last_error":
                parsed[f.name] = value or None
            else:
                parsed[f.name] = float(value) if value else None
        return cls(**parsed)


@dataclass(frozen=True)
class Transition:
    """What one probe changed."""

    outage_ended: float | None = None  # seconds: an outage that counts ended now (a catch-up is owed)
    xero_may_have_disabled: bool = False  # that outage outlasted Xero's retries
    unseen: bool = False  # part of it no probe ran (a blind gap): the receiver may or may not have answered
    went_down: bool = False  # an outage just started to count (after having answered before)
    never_reachable: bool = False  # the receiver has not answered once since probing began: reported now
    first_reachable: bool = False  # the first answer ever (or after never having answered)
    blip: bool = False  # back after failures too few or too short to count


def observe(state: ProbeState, ok: bool, error: str | None, now: float, policy: ProbePolicy
            ) -> tuple[ProbeState, Transition]:
    """The state after one probe (``ok``: answered 200; ``error``: why not), and what changed. Pure."""
    first = state.first_probe if state.first_probe is not None else now
    unseen_since = state.unseen_since
    if unseen_since is None and state.last_probe is not None and now - state.last_probe > policy.blind_gap:
        unseen_since = state.last_probe
    if ok:
        up = replace(state, first_probe=first, last_probe=now, last_ok=now,
                     up_since=state.up_since if state.down_since is None and state.up_since is not None else now,
                     down_since=None, unseen_since=None, failures=0, last_error=None, reported=False)
        if state.last_ok is None:
            return up, Transition(first_reachable=True)
        failed = state.down_since is not None and (
            state.failures >= policy.outage_failures and now - state.down_since >= policy.outage_grace)
        if failed or unseen_since is not None:
            began = min(t for t in (state.down_since if failed else None, unseen_since) if t is not None)
            lasted = now - began
            return (replace(up, outage_from=began, outage_to=now, catch_up_owed=now),
                    Transition(outage_ended=lasted, xero_may_have_disabled=lasted >= policy.xero_retry_window,
                               unseen=unseen_since is not None))
        return up, Transition(blip=state.down_since is not None)
    down_since = state.down_since if state.down_since is not None else now
    failures = state.failures + 1
    report = failures >= policy.outage_failures and not state.reported
    down = replace(state, first_probe=first, last_probe=now, down_since=down_since, failures=failures,
                   unseen_since=unseen_since, last_error=error or "unknown", up_since=None,
                   reported=state.reported or report)
    if not report:
        return down, Transition()
    if state.last_ok is None:
        return down, Transition(never_reachable=True)
    return down, Transition(went_down=True)


def probe_url(public_url: str) -> str:
    """Where the probe GETs: the public URL's /healthz, with no user info, query or fragment (so never a
    credential, in a request line or a log line)."""
    parts = urlsplit(public_url.rstrip("/"))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + HEALTH_PATH, "", ""))


def disabled_reason(settings) -> str | None:
    """Why this deployment is not probed (None: it is). Embedded: one process whose receiver may listen anywhere
    but the default public URL; off: workers that cannot reach their own public URL by design."""
    if settings.embedded:
        return "embedded mode: the receiver runs in this process"
    if not settings.receiver_probe:
        return "CONNECTOR_RECEIVER_PROBE=off"
    if not settings.public_url:
        return "CONNECTOR_PUBLIC_URL is not set"
    return None


class ReceiverProbe:
    def __init__(self, redis, *, public_url: str, session: requests.Session | None = None,
                 clock: Clock = SYSTEM_CLOCK, policy: ProbePolicy | None = None, key: str = DEFAULT_KEY) -> None:
        self._redis = redis
        self.url = probe_url(public_url)
        self._session = session or requests.Session()
        self._clock = clock
        self.policy = policy or ProbePolicy()
        self._key = key

    def check(self) -> tuple[bool, str | None]:
        """One GET of /healthz: (answered 200, else why not: ``http_<status>`` or the exception's type). A
        redirect is a failure too: Xero is not documented to follow one to deliver."""
        try:
            response = self._session.get(self.url, timeout=self.policy.timeout, allow_redirects=False,
                                         headers={"User-Agent": "ml-connector-receiver-probe"})
        except requests.RequestException as exc:
            return False, type(exc).__name__
        response.close()
        return (True, None) if response.status_code == 200 else (False, f"http_{response.status_code}")

    def load(self) -> ProbeState:
        return ProbeState.from_redis(self._redis.hgetall(self._key))

    def probe(self) -> tuple[ProbeState, Transition]:
        """Probe once and record it; logs what changed (never more than one line per transition)."""
        ok, error = self.check()
        state, transition = self.record(ok, error)
        self._log(state, transition)
        return state, transition

    def record(self, ok: bool, error: str | None) -> tuple[ProbeState, Transition]:
        """Fold one probe's result into the shared state, atomically (WATCH): of two probes racing, one
        records each transition."""
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self._key)
                    before = ProbeState.from_redis(pipe.hgetall(self._key))
                    after, transition = observe(before, ok, error, self._clock.time(), self.policy)
                    pipe.multi()
                    pipe.hset(self._key, mapping=after.to_redis())
                    pipe.execute()
                    return after, transition
                except redis_lib.WatchError:
                    continue

    def settle_catch_up(self, owed: float) -> None:
        """The catch-up owed for the outage that ended at ``owed`` was raised: forget it (unless a newer outage
        owes one meanwhile)."""
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(self._key)
                if _text(pipe.hget(self._key, "catch_up_owed") or "") == repr(owed):
                    pipe.multi()
                    pipe.hset(self._key, "catch_up_owed", "")
                    pipe.execute()
            except redis_lib.WatchError:
                pass  # another probe wrote meanwhile; raising a trigger again is harmless (the first time stays)

    def _log(self, state: ProbeState, t: Transition) -> None:
        if t.never_reachable:
            log.warning("receiver.probe.never_reachable", extra={
                "url": self.url, "failed_probes": state.failures, "error": state.last_error,
                "check": ("the receiver has not answered here once since probing began: check that "
                          "CONNECTOR_PUBLIC_URL is the address Xero and Zoho deliver to, that it resolves and its TLS "
                          "certificate is valid, that the web process runs, and that this host may reach it (set "
                          "CONNECTOR_RECEIVER_PROBE=off where workers cannot reach the public URL by design)")})
        elif t.went_down:
            log.warning("receiver.probe.unreachable", extra={
                "url": self.url, "since": _iso(state.down_since), "failed_probes": state.failures,
                "error": state.last_error})
        elif t.outage_ended is not None:
            log.warning("receiver.probe.recovered", extra={
                "url": self.url, "outage_seconds": round(t.outage_ended), "since": _iso(state.outage_from),
                "catch_up": "owed to every active connection",
                **({"unseen": "no probe ran for part of it (no worker or beat): the receiver may have answered"}
                   if t.unseen else {}),
                **({"xero_webhook": "Xero retries for up to 24 hours, then disables the webhook: if the developer "
                                    "portal shows it disabled, re-enable it (the catch-up fetches what was missed)"}
                   if t.xero_may_have_disabled else {})})
        elif t.first_reachable:
            log.info("receiver.probe.reachable", extra={"url": self.url})

    def status(self) -> dict[str, Any]:
        """What `connector status` and /status show: the URL probed (no secret in it) and what was seen."""
        return status_of(self.load(), self.url, self._clock.time())


def status_of(state: ProbeState, url: str, now: float) -> dict[str, Any]:
    return {
        "probed": True, "url": url, "state": state.state,
        "reachable_since": _iso(state.up_since), "unreachable_since": _iso(state.down_since),
        "last_ok": _iso(state.last_ok), "last_probe": _iso(state.last_probe),
        "last_probe_seconds_ago": None if state.last_probe is None else round(max(now - state.last_probe, 0.0), 1),
        "failed_probes": state.failures, "last_error": state.last_error,
        "last_outage": None if state.outage_from is None else {
            "from": _iso(state.outage_from), "to": _iso(state.outage_to),
            "seconds": round((state.outage_to or now) - state.outage_from)},
        "catch_up_owed": state.catch_up_owed is not None,
    }


def not_probed_status(reason: str, url: str = "") -> dict[str, Any]:
    return {"probed": False, "url": url, "state": NOT_PROBED, "reason": reason}


def _encode(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="seconds")

