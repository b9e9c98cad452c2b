"""The operator's view, as one JSON-able dict: `connector status` prints it, the receiver serves it.

``collect_status(deps)`` reads only: the store, the credentials' expiries (never a token), the Xero
rate governor's counters and the day-budget ledger in Redis, the receiver probe's last results, and the broker's queue lengths. ``check_connections(deps)`` is the
"ping your real systems" check: one cheap authenticated call to each side per connection.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from connector import queues
from connector.backfill import BackfillBudget, progress
from connector.errors import reconnect_command
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.pipeline.to_xero.contacts import NEEDS_REVIEW
from connector.polling import POLLED_RESOURCES
from connector.ratelimit import day_share_left
from connector.receiver_probe import NEVER_REACHABLE, UNREACHABLE, not_probed_status, probe_url
from connector.store import audit as stages
from connector.store.parked import WAITING_FOR_ACCOUNT

WORKER_QUEUES = (queues.XERO_QUEUE, queues.ZOHO_QUEUE, queues.MAINTENANCE_QUEUE)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def queue_depths(settings, names: tuple[str, ...] = WORKER_QUEUES) -> dict[str, int] | None:
    """Messages waiting per worker queue on the configured broker (Redis or RabbitMQ, through kombu,
    which also counts the Redis transport's priority lists); None for the in-process broker, which no
    other process shares."""
    if settings.broker_url.startswith("memory://"):
        return None
    from kombu import Connection

    depths = {}
    with Connection(settings.broker_url, connect_timeout=10) as connection:
        for name in names:
            channel = connection.channel()
            try:
                # Passive: only reads the count; never creates a queue or clashes with Celery's arguments.
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except connection.channel_errors:
                depths[name] = 0  # not declared yet: nothing was ever sent to it
            finally:
                channel.close()
    return depths


REVIEW_LISTED = 1000  # counted up to this many: more is a number that says the same


def collect_status(deps) -> dict[str, Any]:
    store = deps.store
    now = store.clock.now()
    connections = []
    for c in store.connections.all():
        tokens = {}
        for system in ("xero", "zoho"):
            owner = deps.credentials.owner_of(c.id, system)
            stored = deps.credentials.load(owner, system)
            tokens[system] = {"expires_at": _iso(stored.tokens.expires_at) if stored else None,
                              "shared_with": owner if owner != c.id else None}
        channels = store.channels.for_connection(deps.credentials.owner_of(c.id, "zoho"))
        usage = deps.governor.usage(c.xero_tenant_id)
        day_limit = deps.budget_ledger.governing_day_limit(c.id)
        successes: dict[str, datetime] = {}
        for stage in (stages.WRITTEN, stages.SKIPPED):
            for record_type, when in store.audit.last_stage_times(c.id, stage).items():
                successes[record_type] = max(when, successes.get(record_type, when))
        cursors = {}
        for resource in POLLED_RESOURCES:
            cursor = store.poll_cursors.get(c.id, resource)
            cursors[resource] = {"modified_since": _iso(cursor.modified_since), "polled_at": _iso(cursor.polled_at),
                                 "swept_at": _iso(cursor.swept_at)}
        backfill = None
        if store.backfills.for_connection(c.id):
            state = progress(c.id, checkpoints=store.backfills, budget=BackfillBudget(deps.redis, clock=store.clock),
                             clock=store.clock)
            backfill = {"state": state.state, "records": state.records, "remaining": state.remaining,
                        "calls": state.calls, "budget_left": state.budget_left, "eta": _iso(state.eta),
                        "eta_at_least": state.eta_at_least, "resume_after": _iso(state.resume_after),
                        "resources": state.resources}
        connections.append({
            "id": c.id,
            "name": c.name,
            "xero_tenant_id": c.xero_tenant_id,
            "state": c.state,
            "state_reason": c.state_reason,
            "tokens": tokens,
            "zoho_channels": [{"channel_id": ch.channel_id, "expires_at": _iso(ch.expires_at)} for ch in channels],
            "xero_calls": {
                "day_limit": day_limit,
                "day_used": usage["day_used"],  # every call Xero counts, a dry run's too
                "day_used_by_dry_runs": usage["day_used_by_dry_runs"],
                "day_left": max(day_limit - usage["day_used"], 0),
                # What replays and backfills may still use: the governor keeps the rest for live work.
                "day_left_for_backfill": day_share_left(day_limit, usage["day_used"], PRIORITY_BACKFILL),
                "minute_used": usage["minute_used"],
                "in_flight": usage["in_flight"],
                "penalty_seconds": usage["penalty_remaining"],
            },
            # The organisation's day budget (connector/budget.py): learned limit, calls in the last 24 h by
            # purpose, projected use of its Xero day, egress; a warning past 80 % of the limit.
            "xero_budget": deps.budget_planner.view(c.id).as_dict(),
            # Zoho counts API credits per org and reports them only in its console (no API reads them).
            "zoho_credits_used": None,
            "parked": store.parked.counts_by_reason(c.id),
            "failures_24h": store.audit.failure_counts(c.id, now - timedelta(hours=24)),
            "last_success": {record_type: _iso(when) for record_type, when in sorted(successes.items())},
            "poll_cursors": cursors,
            "backfill": backfill,
            # Invoices no linking rule placed in a deal (`connector deals unassigned` lists them).
            "deals_unassigned": store.deal_links.count_unassigned(c.id),
            # New Zoho records waiting for a person (a name clash): `connector failures --error needs_review`.
            "needs_review": len(store.audit.failures(c.id, REVIEW_LISTED, error=NEEDS_REVIEW)),
            # Won deals made into Xero invoices (pipeline/to_xero/deals.py): by state, and those waiting for
            # their account to reach Xero.
            "won_deals": {**store.won_deals.counts(c.id),
                          "waiting_for_account": store.parked.count(c.id, reason=WAITING_FOR_ACCOUNT)},
        })
    warnings = [f"connection {c['id']}: {c['xero_budget']['warning']}" for c in connections
                if c["xero_budget"]["warning"]]
    probe = receiver_probe(deps)
    if probe["state"] in (UNREACHABLE, NEVER_REACHABLE):
        warnings.append(f"the receiver {'has never answered' if probe['state'] == NEVER_REACHABLE else 'is unreachable'}"
                        f" at {probe['url']} (since {probe['unreachable_since']}; last error {probe['last_error']})")
    return {
        "generated_at": _iso(now),
        "warnings": warnings,
        "mode": "embedded" if deps.settings.embedded else "distributed",
        "queues": queue_depths(deps.settings),
        "connections": connections,
        "held_webhooks": held_webhooks(deps),
        # When each process role last showed it was alive (connector/heartbeats.py).
        "heartbeats": deps.heartbeats.status(),
        # Whether the receiver answers at the public URL, the route Xero takes (connector/receiver_probe.py); a
        # receiver back after an outage raised a catch-up for every connection.
        "receiver_probe": probe,
        # The incidents the alerts have open (connector/alerts.py): what happened and what fixes it.
        "alerts": open_alerts(deps),
    }


def receiver_probe(deps) -> dict[str, Any]:
    off = deps.receiver_probe_off
    if off is not None:
        return not_probed_status(off, probe_url(deps.settings.public_url) if deps.settings.public_url else "")
    return deps.receiver_probe.status()


def open_alerts(deps) -> list[dict[str, Any]]:
    rows = []
    for key, state in deps.incident_book.open_incidents().items():
        condition = json.loads(state.get("condition") or "{}")
        rows.append({"incident": key, "title": condition.get("title"), "since": condition.get("since"),
                     "records": condition.get("records"), "fix": condition.get("fix"),
                     "resolving": state.get("pending") == "resolved"})
    return rows


def held_webhooks(deps) -> list[dict[str, Any]]:
    """Per Xero organisation not connected yet (or connected without Zoho): the webhook ids held for it,
    since when, and the step that picks them up (connector/held_events.py)."""
    held = deps.held_xero_events.held()
    by_tenant = {c.xero_tenant_id: c for c in deps.store.connections.all()} if held else {}
    rows = []
    for tenant in held:
        connection = by_tenant.get(tenant.tenant_id)
        if connection is None:
            step = ("connect this Xero organisation (`connector connect xero`, or /oauth/xero/start on the "
                    "receiver), then Zoho")
        else:
            step = f"connect Zoho for connection {connection.id} (`{reconnect_command('zoho', [connection.id])}`)"
        rows.append({"xero_tenant_id": tenant.tenant_id, "held": tenant.count, "since": _iso(tenant.since),
                     "connection": connection.id if connection else None,
                     "next": f"{step}; its held events are fetched then"})
    return rows


def check_connections(deps, connections=None) -> list[dict[str, Any]]:
    """Per connection: Xero (the tenant is reachable, the scopes granted, the organisation's plan and base
    currency: connector/xero_organisation.py) and Zoho (the edition, our custom fields), each "ok" or what to do."""
    from connector.errors import ZohoNotConnected
    from connector.xero_organisation import read_organisation
    from connector.zoho_setup import check_org, needed_for

    results = []
    zoho_owners = deps.credentials.share_map("zoho")  # connections using another's Zoho consent
    for c in connections if connections is not None else deps.store.connections.all():
        result: dict[str, Any] = {"connection": c.id, "name": c.name}
        try:
            stored = deps.credentials.load(deps.credentials.owner_of(c.id, "xero"), "xero")
            xero = deps.xero_client(c)
            tenants = {str(t.get("tenantId")) for t in xero.get_connections()}
            scopes = sorted((stored.tokens.scope or "").split()) if stored else []
            if c.xero_tenant_id in tenants:
                # Plan, base currency, country: one GET /Organisation, or the line saying to reconnect for them.
                result["xero"] = {"ok": True, "scopes": scopes, "organisation": read_organisation(xero, scopes)}
            else:
                result["xero"] = {"ok": False, "scopes": scopes, "todo": (
                    "the Xero grant no longer covers this organisation; run `connector connect xero` and tick it")}
        except Exception as exc:  # any failure is reported with what to do, never raised
            result["xero"] = {"ok": False, "error": str(exc),
                              "todo": f"reconnect with `{reconnect_command('xero')}`, or check XERO_* settings"}
        try:
            needed = needed_for(deps.sync_config)
            org = check_org(deps.zoho_client_for(c.id), needed)
            result["zoho"] = {
                "ok": not org.missing,
                # Only Professional and above have the Invoices module (Zoho CRM editions).
                "edition": "Professional or higher (Invoices)" if org.has_invoices
                else "Free or Standard (no Invoices: contacts only)",
                "custom_fields": {m: sorted(f.api_name for f in needed
                                            if f.module == m and f.api_name in fields)
                                  for m, fields in sorted(org.fields.items())},
                "missing_fields": [f"{f.module}.{f.api_name}" for f in org.missing],
                **({"todo": "run `connector setup-zoho`: " + "; ".join(org.problems())} if org.missing else {}),
            }
        except ZohoNotConnected as exc:  # never connected: nothing to reconnect, nor to check in ZOHO_*
            result["zoho"] = {"ok": False, "error": str(exc), "todo": f"connect Zoho: `{reconnect_command('zoho', [c.id])}`"}
        except Exception as exc:
            # One consent serves every connection sharing the org: one command names them all.
            owner = zoho_owners.get(c.id, c.id)
            sharing = sorted({owner, *(i for i, o in zoho_owners.items() if o == owner)})
            result["zoho"] = {"ok": False, "error": str(exc),
                              "todo": f"reconnect with `{reconnect_command('zoho', sharing)}`, or check ZOHO_* settings"}
        result["currencies"] = _currencies(deps, c.id, result["xero"].get("organisation"))
        results.append(result)
    return results


def _currencies(deps, connection_id: int, organisation: dict[str, Any] | None) -> dict[str, Any]:
    """Xero's base currency (from GET /Organisation, when read), the Zoho org's home currency (GET /crm/v8/org
    ``iso_code``) and what a difference means for the figures (connector/xero_organisation.py ``currency_note``)."""
    from connector.xero_organisation import currency_note

    xero = organisation.get("base_currency") if organisation and organisation.get("read") else None
    found: dict[str, Any] = {"xero": xero}
    try:
        org = deps.zoho_client_for(connection_id).org()
        found["zoho"] = org.get("iso_code") or org.get("currency")
    except Exception as exc:  # the Zoho check says what to do about a broken connection; a missing scope, here
        found.update(zoho=None, zoho_error=str(exc))
    found["note"] = currency_note(xero, found["zoho"], deps.sync_config.base_currency)
    return found
