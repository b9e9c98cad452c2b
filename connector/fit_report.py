"""The fit report of one connection: will this Xero organisation and this Zoho org work with the connector, and
what will the backfill cost? The console's "Connect and fit" page shows it (webhooks/console/connect.py).

It makes API calls (``connector check``'s: Xero's connections list and organisation, Zoho's field metadata and org;
and one list call per Xero record type to learn how many there are), so a task builds it (workers/console_tasks.py) and stores it in
Redis; the receiver only enqueues that task and reads what was stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from typing import Any

from connector.backfill import PAGE_SIZE, RESOURCES, BackfillBudget, progress, real_backfill_cost
from connector.call_purpose import CHECK
from connector.http import call_purpose
from connector.status import check_connections

FIT_REPORT_TTL_SECONDS = 7 * 86400  # a week-old report is stale: the page asks for a new one


def _key(connection_id: int) -> str:
    return f"console:fit:{connection_id}"


def organisation_size(xero) -> dict[str, int | None]:
    """Records per Xero type, one call each: a page of one record carries Xero's pagination block with the
    total (``itemCount``: https://developer.xero.com/documentation/api/accounting/requests-and-responses#pagination).
    None where the answer had no pagination block (UNVERIFIED that every list endpoint sends one for
    pageSize=1: a real organisation's fit report would show it)."""
    return {resource: xero.list_records(resource, page=1, page_size=1).item_count for resource in RESOURCES}


def build_fit_report(deps, connection, *, now: datetime) -> dict[str, Any]:
    """``connector check`` for one connection, the Xero organisation's size, its day limit as learned, and what a
    backfill of everything would take at the current budget (connector/backfill.py ``real_backfill_cost``)."""
    [check] = check_connections(deps, [connection])
    ledger = deps.budget_ledger
    state = ledger.limit_state(connection.id)
    report: dict[str, Any] = {
        "connection": connection.id, "name": connection.name, "checked_at": now.isoformat(),
        "xero": check["xero"], "zoho": check["zoho"],
        "xero_day_limit": ledger.day_limit(connection.id, state), "xero_day_limit_learned": state.limit is not None,
    }
    report["organisation"] = check["xero"].get("organisation")  # plan, base currency, country, or why not
    report["currencies"] = check["currencies"]
    try:
        with call_purpose(CHECK):
            sizes = organisation_size(deps.xero_client(connection))
    except Exception as exc:  # reported with what to do, like check's own failures
        report["size"] = {"error": str(exc), "todo": "fix the Xero connection above, then check again"}
        return report
    # A backfill lists every type page by page (an empty type still takes its one call).
    calls = sum(max(math.ceil((n or 0) / PAGE_SIZE), 1) for n in sizes.values())
    cost = real_backfill_cost(calls, day_limit=report["xero_day_limit"], day_used=ledger.used_today(connection.id, state),
                              calls_per_day=None, backfill_used=0)
    report["size"] = {"records": sizes, "total": sum(n or 0 for n in sizes.values()),
                      "unknown": [r for r, n in sizes.items() if n is None], "backfill": cost.as_dict()}
    return report


class FitReports:
    """The newest fit report per connection, in Redis (a report is rebuilt on demand; nothing is lost with it)."""

    def __init__(self, redis) -> None:
        self._redis = redis

    def save(self, report: dict[str, Any]) -> None:
        self._redis.set(_key(int(report["connection"])), json.dumps(report), ex=FIT_REPORT_TTL_SECONDS)

    def load(self, connection_id: int) -> dict[str, Any] | None:
        raw = self._redis.get(_key(connection_id))
        return json.loads(raw) if raw else None


def backfill_progress(deps, connection_id: int) -> dict[str, Any] | None:
    """The backfill's progress from its checkpoints (connector/backfill.py ``progress``), as JSON-ready values;
    None when this connection never had one."""
    store = deps.store
    checkpoints = store.backfills.for_connection(connection_id)
    if not checkpoints:
        return None
    state = progress(connection_id, checkpoints=store.backfills, budget=BackfillBudget(deps.redis, clock=store.clock),
                     clock=store.clock)
    found = asdict(state)
    for name in ("eta", "resume_after"):
        found[name] = found[name].isoformat() if found[name] else None
    # When the newest run last moved: a page waiting for a run it just queued tells it from the one before.
    return {"connection": connection_id, **found,
            "updated_at": max(c.updated_at for c in checkpoints).isoformat()}


def connect_overview(deps) -> list[dict[str, Any]]:
    """Per connection, where it stands in "connect and fit": its Xero organisation, its Zoho org and data centre
    (or none yet), its stored fit report and its backfill's progress. Never a token."""
    from connector.settings import ZOHO_ACCOUNTS_SERVERS

    data_centres = {server.rstrip("/"): dc for dc, server in ZOHO_ACCOUNTS_SERVERS.items()}
    reports = FitReports(deps.redis)
    return [{"id": c.id, "name": c.name, "xero_tenant_id": c.xero_tenant_id, "state": c.state,
             "state_reason": c.state_reason, "zoho_connected": zoho_connected(deps, c.id), "zoho_org_id": c.zoho_org_id, "zoho_api_domain": c.zoho_api_domain,
             "zoho_dc": data_centres.get((c.zoho_accounts_url or "").rstrip("/")),
             "fit": reports.load(c.id), "backfill": backfill_progress(deps, c.id)}
            for c in deps.store.connections.all()]


def zoho_connected(deps, connection_id: int) -> bool:
    """True when a Zoho token set serves this connection (its own, or the one it shares); none is read."""
    return deps.credentials.owner_of(connection_id, "zoho") in deps.credentials.owners("zoho")
