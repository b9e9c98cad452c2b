"""Zoho notification channels that never lapse.

Zoho's pages: https://www.zoho.com/crm/developer/docs/api/v8/notifications/overview.html

- ``ensure_channel`` enables one channel per Zoho org (kept under the connection holding the
  org's tokens) for the modules we listen to, with a random token kept in the vault (inside the
  org's encrypted token set) and only its hash in ``ChannelStore`` for the receiver.
- ``renew_channels`` PATCHes each channel's expiry well before it runs out and stores the expiry
  Zoho actually returned: Zoho silently grants one hour when asked for more than a week
  (https://www.zoho.com/crm/developer/docs/api/v8/notifications/update-info.html).
  A channel Zoho no longer lists (lapsed or deleted) is re-created with the same id and token,
  and the gap is reconciled by ``reconcile_gap``.
- ``reconcile_gap`` lists records modified since the channel was last known alive and hands them
  to the two-way path as ordinary Zoho notifications, so no change is lost.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import RecordRejected
from connector.store.channels import ChannelInfo, ChannelStore
from connector.store.credentials import CredentialStore, StaleCredentials

log = logging.getLogger(__name__)

# Invoices: a person setting an invoice's Deal lookup is the manual link at once (pipeline/deals.py
# lookups_edited); Zoho's notifications support the module (enable page above lists Invoices).
WATCHED_MODULES = ("Contacts", "Accounts", "Invoices")
WATCHED_EVENTS = [f"{module}.edit" for module in WATCHED_MODULES]
# Deals: watched (edits and creations) only where a deal's stage makes something in Xero: won deals become
# Xero invoices (mapping.yaml won_deals.enabled), or a deal reaching a stage brings its Account to Xero
# (create_in_xero.deal_stages). Otherwise every deal edit, our own figures' writes included, would be a
# notification to take in for nothing.
DEALS_MODULE = "Deals"


def watches_deals(config: Any) -> bool:
    """Whether mapping.yaml (a SyncConfig) needs the Deals notifications: the one place that decides."""
    return bool(config.won_deal_invoices or (config.creates_in_xero("Accounts") and config.create_deal_stages))


def watch_options(config: Any) -> dict[str, Any]:
    """``ensure_channel``'s and ``renew_channels``' watched-event options for this mapping.yaml: switching an
    option on enables the channel again with its events at the next connect or renewal."""
    return {"with_deals": watches_deals(config), "create_modules": tuple(config.create_modules)}


def watched_modules(zoho: Any, *, with_deals: bool = False) -> tuple[str, ...]:
    """The watched modules this org has: Free and Standard editions have no Invoices, and Zoho refuses a watch
    on (or a listing of) a module the org lacks (https://www.zoho.com/crm/developer/docs/api/v8/modules-api.html)."""
    present = {str(m.get("api_name")) for m in zoho.modules()}
    wanted = WATCHED_MODULES + ((DEALS_MODULE,) if with_deals else ())
    return tuple(m for m in wanted if m in present)


def channel_events(modules: tuple[str, ...], create_modules: tuple[str, ...] = ()) -> list[str]:
    """Edits of every watched module; creations too of Deals (a deal may be entered already won) and of the
    modules whose new records become Xero contacts (mapping.yaml create_in_xero; Zoho's events are
    {module}.create/edit/delete/all, enable page above)."""
    return ([f"{m}.edit" for m in modules]
            + [f"{m}.create" for m in modules if m in create_modules or m == DEALS_MODULE])
# Zoho v8 allows at most a week (update-info page above); six days leaves a day to notice a failed renewal.
CHANNEL_LIFETIME = timedelta(days=6)
# Renew when less than this is left; the beat runs every 30 minutes, so even a one-hour grant survives.
RENEW_BEFORE = timedelta(days=2)
# Reconcile from a little before the channel was last known alive: clocks and Zoho's own lag differ.
RECONCILE_OVERLAP = timedelta(minutes=5)
CHANNEL_TOKEN_KEY = "channel_token"

Enqueue = Callable[[int, dict], None]  # (connection_id, notification) → the ingest task


@dataclass(frozen=True)
class ChannelOutcome:
    channel_id: str
    action: str  # "created", "renewed", "recreated", "fresh", "failed"
    expires_at: datetime | None
    reconciled: int = 0
    connection_id: int | None = None
    error: str | None = None  # why, when the action is "failed"


def ensure_channel(
    connection_id: int,
    *,
    zoho: Any,
    channels: ChannelStore,
    credentials: CredentialStore,
    notify_url: str,
    clock: Clock = SYSTEM_CLOCK,
    lifetime: timedelta = CHANNEL_LIFETIME,
    with_deals: bool = False,
    create_modules: tuple[str, ...] = (),
) -> ChannelOutcome:
    """Make sure the org behind ``connection_id`` (its Zoho token owner) has a live channel (watching Deals
    too when ``with_deals``, and the creations of ``create_modules``)."""
    existing = channels.for_connection(connection_id)
    if existing:
        return renew_channel(existing[0], zoho=zoho, channels=channels, credentials=credentials,
                             notify_url=notify_url, clock=clock, lifetime=lifetime,
                             force=_lacks_events(existing[0], with_deals, create_modules), with_deals=with_deals,
                             create_modules=create_modules)
    channel_id = str(secrets.randbelow(9 * 10**15) + 10**15)  # a long, as Zoho's enable page wants
    token = _channel_token(credentials, connection_id)
    expires_at, events = _enable(zoho, channel_id, token, notify_url, clock.now() + lifetime, with_deals=with_deals,
                                 create_modules=create_modules)
    channels.save(connection_id, channel_id, token=token, events=events, expires_at=expires_at)
    log.info("enabled Zoho channel %s for connection %s until %s", channel_id, connection_id, expires_at)
    return ChannelOutcome(channel_id, "created", expires_at)


def renew_channels(
    *,
    zoho_for: Callable[[int], Any],
    channels: ChannelStore,
    credentials: CredentialStore,
    notify_url: str,
    enqueue: Enqueue,
    clock: Clock = SYSTEM_CLOCK,
    lifetime: timedelta = CHANNEL_LIFETIME,
    renew_before: timedelta = RENEW_BEFORE,
    connection_ids: list[int] | None = None,
    with_deals: bool = False,
    create_modules: tuple[str, ...] = (),
) -> list[ChannelOutcome]:
    """The beat job: check every channel is still listed by Zoho, renew those near expiry, re-create
    the missing ones and reconcile their gap. ``zoho_for(connection_id)`` gives a ZohoClient.

    Each org stands alone: one whose grant was revoked, or whose Zoho fails, gets a "failed" outcome
    (logged here; the caller records it) and the orgs after it are renewed all the same.
    """
    outcomes = []
    owners = connection_ids if connection_ids is not None else sorted({c.connection_id for c in channels.all()})
    for connection_id in owners:
        try:
            outcomes += _renew_org(connection_id, zoho=zoho_for(connection_id), channels=channels,
                                   credentials=credentials, notify_url=notify_url, enqueue=enqueue, clock=clock,
                                   lifetime=lifetime, renew_before=renew_before, with_deals=with_deals,
                                   create_modules=create_modules)
        except Exception as exc:
            log.exception("renewing the Zoho channels of connection %s failed; the other orgs go on", connection_id)
            for channel in channels.for_connection(connection_id) or [None]:
                outcomes.append(ChannelOutcome(channel.channel_id if channel else "", "failed",
                                               channel.expires_at if channel else None,
                                               connection_id=connection_id, error=f"{type(exc).__name__}: {exc}"))
    return outcomes


def _renew_org(connection_id: int, *, zoho: Any, channels: ChannelStore, credentials: CredentialStore,
               notify_url: str, enqueue: Enqueue, clock: Clock, lifetime: timedelta,
               renew_before: timedelta, with_deals: bool = False,
               create_modules: tuple[str, ...] = ()) -> list[ChannelOutcome]:
    outcomes = []
    live = {str(w.get("channel_id")) for w in zoho.get_watch()}
    for channel in channels.for_connection(connection_id):
        missing = channel.channel_id not in live
        due = channel.expires_at - clock.now() <= renew_before
        # Won-deal invoices (Deals) or new records becoming Xero contacts (their creations) switched on since
        # the channel was enabled: enable it again with those events.
        lacks = _lacks_events(channel, with_deals, create_modules)
        if not (missing or due or lacks):
            continue
        outcome = renew_channel(channel, zoho=zoho, channels=channels, credentials=credentials,
                                notify_url=notify_url, clock=clock, lifetime=lifetime, force=missing or lacks,
                                with_deals=with_deals, create_modules=create_modules)
        if outcome.action == "recreated" and missing:
            since = (channel.renewed_at or channel.created_at) - RECONCILE_OVERLAP
            outcome = ChannelOutcome(outcome.channel_id, outcome.action, outcome.expires_at,
                                     reconcile_gap(connection_id, since=since, zoho=zoho, enqueue=enqueue,
                                                   channel_id=channel.channel_id,
                                                   modules=watched_modules(zoho, with_deals=with_deals)))
        outcomes.append(outcome)
    return outcomes


def renew_channel(
    channel: ChannelInfo,
    *,
    zoho: Any,
    channels: ChannelStore,
    credentials: CredentialStore,
    notify_url: str,
    clock: Clock,
    lifetime: timedelta,
    force: bool,
    with_deals: bool = False,
    create_modules: tuple[str, ...] = (),
) -> ChannelOutcome:
    """PATCH a new expiry; a channel Zoho no longer knows (NOT_SUBSCRIBED), or ``force``d (it lacks events
    now wanted), is enabled again under its id and token. That enabling a live channel id again replaces its
    events is what the sandbox does; UNVERIFIED on Zoho (a real org's test: enable a live channel id again
    with one more event, then list it)."""
    now = clock.now()
    if not force and channel.expires_at - now > RENEW_BEFORE:
        return ChannelOutcome(channel.channel_id, "fresh", channel.expires_at)
    wanted = now + lifetime
    lapsed = force or channel.expires_at <= now
    if not lapsed:
        try:
            items = zoho.update_watch([{"channel_id": int(channel.channel_id), "channel_expiry": wanted}])
            expires_at = _granted_expiry(items, channel.channel_id, wanted)
            channels.renewed(channel.channel_id, expires_at)
            return ChannelOutcome(channel.channel_id, "renewed", expires_at)
        except RecordRejected as exc:
            if exc.code != "NOT_SUBSCRIBED":
                raise
    token = _channel_token(credentials, channel.connection_id)
    expires_at, events = _enable(zoho, channel.channel_id, token, notify_url, wanted, with_deals=with_deals,
                                 create_modules=create_modules)
    channels.save(channel.connection_id, channel.channel_id, token=token, events=events, expires_at=expires_at)
    channels.renewed(channel.channel_id, expires_at)
    log.warning("Zoho channel %s of connection %s had lapsed; re-created until %s",
                channel.channel_id, channel.connection_id, expires_at)
    return ChannelOutcome(channel.channel_id, "recreated", expires_at)


def reconcile_gap(connection_id: int, *, since: datetime, zoho: Any, enqueue: Enqueue, channel_id: str,
                  modules: tuple[str, ...] | None = None) -> int:
    """Hand every record modified since ``since`` to the ingest task as a Zoho notification."""
    handed = 0
    for module in modules if modules is not None else watched_modules(zoho):
        page = 1
        while True:
            rows, more = zoho.list_records(module, fields=["Modified_Time"], modified_since=since, page=page)
            ids = [str(row["id"]) for row in rows]
            if ids:
                enqueue(connection_id, {"module": module, "ids": ids, "operation": "update",
                                        "channel_id": channel_id, "server_time": None, "affected_fields": [],
                                        "source": "reconcile"})
                handed += len(ids)
            if not more:
                break
            page += 1
    log.info("reconciled %d Zoho record(s) modified since %s for connection %s", handed, since, connection_id)
    return handed


def _lacks_events(channel: ChannelInfo, with_deals: bool, create_modules: tuple[str, ...]) -> bool:
    have = set(channel.events or [])
    return (with_deals and f"{DEALS_MODULE}.edit" not in have) or any(f"{m}.create" not in have
                                                                       for m in create_modules)


def _enable(zoho: Any, channel_id: str, token: str, notify_url: str, wanted: datetime, *,
            with_deals: bool = False, create_modules: tuple[str, ...] = ()) -> tuple[datetime, list[str]]:
    """Enable the channel on the watched modules the org has; (the expiry Zoho granted, the events)."""
    events = channel_events(watched_modules(zoho, with_deals=with_deals), create_modules)
    items = zoho.enable_watch([{"channel_id": int(channel_id), "events": events, "channel_expiry": wanted,
                                "token": token, "notify_url": notify_url}])
    return _granted_expiry(items, channel_id, wanted), events


def _granted_expiry(items: list[dict], channel_id: str, wanted: datetime) -> datetime:
    """The earliest expiry Zoho reported for the channel's modules: what we actually got."""
    stamps = [
        datetime.fromisoformat(event["channel_expiry"])
        for item in items
        for event in (item.get("details") or {}).get("events") or []
        if str(event.get("channel_id")) == str(channel_id) and event.get("channel_expiry")
    ]
    if not stamps:
        raise RecordRejected(f"Zoho did not say when channel {channel_id} expires", code="NO_EXPIRY")
    granted = min(stamps)
    if granted < wanted - timedelta(minutes=1):
        log.warning("Zoho granted channel %s only until %s (asked for %s); it will be renewed sooner",
                    channel_id, granted, wanted)
    return granted


def _channel_token(credentials: CredentialStore, connection_id: int) -> str:
    """The org's channel token from the vault, made and stored (compare-and-swap) the first time."""
    while True:
        stored = credentials.load(connection_id, "zoho")
        if stored is None:
            raise LookupError(f"connection {connection_id} holds no Zoho tokens; connect Zoho first")
        token = (stored.tokens.extra or {}).get(CHANNEL_TOKEN_KEY)
        if token:
            return token
        stored.tokens.extra = {**(stored.tokens.extra or {}), CHANNEL_TOKEN_KEY: secrets.token_urlsafe(30)}
        try:
            credentials.save(connection_id, "zoho", stored.tokens, expected_version=stored.version)
        except StaleCredentials:
            continue  # a refresh landed meanwhile; read again and add the token to the new set
