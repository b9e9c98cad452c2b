"""Operating commands of `connector`: replay, failures, status and check (backfill: workers/cli_backfill.py).

workers/cli.py only registers them (``register``, which registers backfill in its place among them); each
command's logic lives in connector/.
"""

from __future__ import annotations

import argparse
import json
import sys
from connector.errors import InvalidArgument
from workers import cli_backfill


def _parse_since(text: str | None, deps):
    from connector.replay import parse_since

    return None if text is None else parse_since(text, now=deps.store.clock.now())


# -- replay ---------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """One record set, or every failure matching the filters; in-process on the embedded default."""
    from connector.replay import connection_id_of, failed_replays, replay_request
    from workers.deps import get_deps

    deps = get_deps()
    try:
        connection_id = connection_id_of(args.connection, deps.store)
        if args.failed:
            requests = failed_replays(deps.store, connection_id=connection_id, since=_parse_since(args.since, deps),
                                      record=args.record, error=args.error, source=args.source, limit=args.limit)
        elif args.record and args.ids:
            requests = [replay_request(deps.store, connection=connection_id, record=args.record, ids=args.ids,
                                       source=args.source)]
        else:
            raise InvalidArgument("replay needs RECORD and at least one ID, or --failed")
    except InvalidArgument as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if not requests:
        print("nothing to replay: no failures match")
        return 0
    if deps.settings.embedded:
        return _replay_here(requests)
    return _replay_on_workers(requests)


def _replay_here(requests) -> int:
    """The embedded default has no shared broker: a queued task would wait for a worker that never
    comes, so the replay runs in this process and its outcome is printed."""
    from workers.maintenance_tasks import replay_in_process

    failed = 0
    for request in requests:
        outcome = replay_in_process(request)
        print(f"replayed {len(request.ids)} {request.resource} of connection #{request.connection_id} "
              f"(from {request.source}): {len(outcome.written)} written, {len(outcome.skipped)} unchanged, "
              f"{len(outcome.failed)} failed")
        for xero_id, reason in outcome.failed.items():
            print(f"  failed {xero_id}: {reason}")
        failed += len(outcome.failed)
    return 1 if failed else 0


def _replay_on_workers(requests) -> int:
    from workers.app import app
    from workers.maintenance_tasks import dispatch_replay

    for request in requests:
        dispatch_replay(request)
        print(f"queued replay of {len(request.ids)} {request.resource} of connection #{request.connection_id} "
              f"(from {request.source}); follow it with `connector audit`")
    try:
        answered = app.control.ping(timeout=1.0)
    except Exception:  # a broker hiccup must not hide that the work was queued
        answered = None
    if not answered:
        print("warning: no worker answered a ping; the replay waits in the queue until a worker starts",
              file=sys.stderr)
    return 0


# -- failures -------------------------------------------------------------------------------------


def cmd_failures(args: argparse.Namespace) -> int:
    from connector.replay import connection_id_of, dismiss, list_failures
    from workers.deps import get_deps

    deps = get_deps()
    try:
        connection_id = None if args.connection is None else connection_id_of(args.connection, deps.store)
        if args.limit < 1:
            raise InvalidArgument(f"--limit must be at least 1; got {args.limit}")
        if args.dismiss and not (args.reason or "").strip():
            raise InvalidArgument("--dismiss needs --reason \"why\" (it is kept in each record's audit trail)")
        # One more than asked for tells whether the limit left some out.
        failures = list_failures(deps.store, connection_id=connection_id, since=_parse_since(args.since, deps),
                                 record=args.record, error=args.error, limit=args.limit + 1)
    except InvalidArgument as exc:
        print(f"failures: {exc}", file=sys.stderr)
        return 2
    more, failures = len(failures) > args.limit, failures[:args.limit]
    if args.dismiss:
        count = dismiss(deps.store, failures, reason=args.reason, by="cli")
        print(f"dismissed {count} failure(s){' (more match: run it again)' if more else ''}; "
              "`connector audit` shows each one's reason")
        return 0
    if args.json:
        print(json.dumps([f.as_dict() for f in failures], indent=2))
        return 0
    if not failures:
        print("no failures")
        return 0
    print(f"{'failed at (UTC)':<20} {'conn':>4} {'record':<10} {'id':<38} {'error':<22} {'tries':>5}  reason")
    for f in failures:
        print(f"{f.failed_at.strftime('%Y-%m-%d %H:%M:%S'):<20} {f.connection_id or '-':>4} {f.record_type:<10} "
              f"{f.record_id:<38} {f.error:<22} {f.attempts:>5}  {f.reason}")
    shown = f"the newest {len(failures)} failed (more with a higher --limit)" if more else f"{len(failures)} failed"
    print(f"{shown}; replay them with `connector replay CONNECTION --failed` (same filters)")
    return 0


# -- status and check -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from connector.status import collect_status
    from workers.deps import get_deps

    status = collect_status(get_deps())
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    queues = status["queues"]
    print(f"{status['generated_at']}  mode={status['mode']}  queues: " +
          (", ".join(f"{k}={v}" for k, v in queues.items()) if queues is not None else "in-process (not shared)"))
    for c in status["connections"]:
        calls = c["xero_calls"]
        print(f"#{c['id']} {c['name']}  state={c['state']}{' (' + c['state_reason'] + ')' if c['state_reason'] else ''}")
        print(f"    Xero today: {calls['day_used'] - calls['day_used_by_dry_runs']} used by syncing, "
              f"{calls['day_used_by_dry_runs']} by dry runs, {calls['day_left']} left of {calls['day_limit']} "
              f"({calls['day_left_for_backfill']} for backfill); this minute {calls['minute_used']}, "
              f"in flight {calls['in_flight']}")
        budget = c["xero_budget"]
        print(f"    Xero budget: limit {budget['day_limit']} a day ({'learned' if budget['limit_learned'] else 'assumed'})"
              f", projected today {budget['projected_today']} ({budget['used_today']} so far); last 24 h: "
              + (", ".join(f"{k}={v}" for k, v in sorted(budget["calls_24h"].items())) or "no calls")
              + f"; egress {budget['egress_bytes_24h']} B in 24 h, {budget['egress_bytes_month']} B this month")
        for purpose, waiting in sorted(budget["deferred"].items()):
            print(f"    deferred {purpose}: {waiting['detail']}")
        if budget["warning"]:
            print(f"    WARNING: {budget['warning']}")
        print(f"    tokens: xero until {c['tokens']['xero']['expires_at']}, zoho until {c['tokens']['zoho']['expires_at']}"
              f"; channels: {', '.join(ch['expires_at'] or '?' for ch in c['zoho_channels']) or 'none'}")
        print(f"    parked: {', '.join(f'{k}={v}' for k, v in c['parked'].items())}; failures 24h: "
              f"{', '.join(f'{k}={v}' for k, v in c['failures_24h'].items()) or 'none'}")
        print(f"    last success: {', '.join(f'{k} {v}' for k, v in c['last_success'].items()) or 'none yet'}")
        if c.get("needs_review"):
            print(f"    new Zoho records waiting for review: {c['needs_review']} (see `connector failures --error "
                  "needs_review`; resolve with `connector link` or `connector create`)")
        if c["deals_unassigned"]:
            print(f"    invoices in no deal: {c['deals_unassigned']} (see `connector deals unassigned`)")
        won = c["won_deals"]
        if any(won.values()):
            print(f"    won deals: {won['created'] + won['left']} invoiced in Xero; {won['left']} left their won stage "
                  f"after (review in Xero, see `connector failures`); {won['waiting_for_account']} waiting for "
                  f"their account to reach Xero; {won['creating']} being created")
        print("    poll cursors: " + ", ".join(f"{k} {v['modified_since'] or 'not polled'}"
                                                for k, v in c["poll_cursors"].items()))
        if c["backfill"]:
            b = c["backfill"]
            waiting = f" for its budget until {b['resume_after']}" if b["resume_after"] else ""
            print(f"    backfill: {b['state']}{waiting}, {b['records']} records, {b['calls']} calls, "
                  f"ETA {'>= ' if b['eta_at_least'] else ''}{b['eta'] or '?'}")
    if status["held_webhooks"]:
        print("held webhooks of Xero organisations not connected yet:")
        for h in status["held_webhooks"]:
            print(f"    {h['xero_tenant_id']}: {h['held']} ids held since {h['since'] or '?'}; {h['next']}")
    print("heartbeats: " + ", ".join(
        f"{role} {'never seen' if beat['last_seen_seconds_ago'] is None else str(beat['last_seen_seconds_ago']) + ' s ago'}"
        for role, beat in status["heartbeats"].items()))
    print("receiver: " + describe_receiver_probe(status["receiver_probe"]))
    for alert in status["alerts"]:
        print(f"ALERT {alert['incident']}: {alert['title']} (since {alert['since'] or '?'}); fix: {alert['fix']}")
    return 0


def describe_receiver_probe(probe: dict) -> str:
    """One line: what the probe of the receiver's public /healthz saw (connector/receiver_probe.py)."""
    if not probe["probed"]:
        return f"not probed ({probe['reason']})"
    state, url = probe["state"], probe["url"]
    if state == "not_probed_yet":
        return f"{url} not probed yet (a worker probes it every minute)"
    if state == "reachable":
        line = f"reachable at {url} since {probe['reachable_since']}, last ok {probe['last_ok']}"
    elif state == "never_reachable":
        line = (f"NEVER REACHABLE at {url}: {probe['failed_probes']} probes failed since {probe['unreachable_since']} "
                f"(last error {probe['last_error']}); check CONNECTOR_PUBLIC_URL")
    else:
        line = (f"UNREACHABLE at {url} since {probe['unreachable_since']} (last ok {probe['last_ok']}, "
                f"last error {probe['last_error']})")
    outage = probe["last_outage"]
    if outage:
        line += f"; last outage {outage['from']} to {outage['to']} ({outage['seconds']} s; catch-up raised)"
    if probe["catch_up_owed"]:
        line += "; catch-up owed, not raised yet"
    return line + f"; last probe {probe['last_probe_seconds_ago']} s ago"


def cmd_check(args: argparse.Namespace) -> int:
    from connector.status import check_connections
    from workers.deps import get_deps

    deps = get_deps()
    wanted = None
    if args.connection:
        try:
            from connector.replay import connection_id_of

            wanted = [deps.store.connections.get(connection_id_of(args.connection, deps.store))]
        except InvalidArgument as exc:
            print(f"check: {exc}", file=sys.stderr)
            return 2
    results = check_connections(deps, wanted)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        todo: list[str] = []  # once each: one consent may serve several connections
        for r in results:
            x, z = r["xero"], r["zoho"]
            print(f"#{r['connection']} {r['name']}")
            if "error" in x:
                print(f"    xero: PROBLEM: {x['error']}")
            else:
                print(f"    xero: {'ok' if x['ok'] else 'PROBLEM'}; scopes: {' '.join(x.get('scopes', [])) or '?'}")
            organisation = x.get("organisation")
            if organisation is not None:
                print(f"    xero organisation: {_organisation_line(organisation)}")
            if "error" in z:
                print(f"    zoho: PROBLEM: {z['error']}")
            else:
                print(f"    zoho: {'ok' if z['ok'] else 'PROBLEM'}; edition: {z.get('edition', '?')}; custom fields: "
                      + ("; ".join(f"{m}: {', '.join(f) or '-'}" for m, f in z.get("custom_fields", {}).items())
                         or "?"))
                if z.get("missing_fields"):
                    print(f"    zoho: missing custom fields: {', '.join(z['missing_fields'])}")
            currencies = r.get("currencies") or {}
            if currencies.get("zoho"):
                print(f"    zoho: home currency {currencies['zoho']}")
            if currencies.get("note"):
                print(f"    currencies: {currencies['note']}")
            todo += [side["todo"] for side in (x, z) if not side["ok"] and side["todo"] not in todo]
        if todo:
            print("to do:")
            for line in todo:
                print(f"  - {line}")
    if not results:
        print("no connections yet; run `connector connect xero`")
    return 0 if all(r["xero"]["ok"] and r["zoho"]["ok"] for r in results) else 1


def _organisation_line(organisation: dict) -> str:
    """The plan, base currency and country (connector/xero_organisation.py), or why they are not shown."""
    if organisation.get("read"):
        partner = " (Partner edition: no invoicing)" if organisation.get("edition") == "PARTNER" else ""
        return (f"plan {organisation.get('plan') or '?'}{partner}, base currency {organisation.get('base_currency') or '?'}"
                f", country {organisation.get('country') or '?'}")
    if organisation.get("note"):
        return organisation["note"]
    return f"not read: {organisation.get('error')}; {organisation.get('todo')}"


# -- registration ---------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("replay", help="re-run the sync of some records, or of every failed one (see `failures`)")
    p.add_argument("connection", help="connection number (see `connector connections`)")
    p.add_argument("record", nargs="?",
                   help="contact(s), invoice(s), credit-note(s) or payment(s); with --failed, only this type")
    p.add_argument("ids", nargs="*", help="Xero ids of the records to replay")
    p.add_argument("--failed", action="store_true", help="replay every record still failing (see `failures`)")
    p.add_argument("--since", default=None, help="with --failed: failed since (24h, 7d, or an ISO date/time)")
    p.add_argument("--error", default=None, help="with --failed: only this error class (as `failures` shows it)")
    p.add_argument("--source", choices=["xero", "snapshot"], default="xero",
                   help="xero: fetch again (default); snapshot: push the stored copy without calling Xero")
    p.add_argument("--limit", type=int, default=1000, help="with --failed: at most this many records")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("failures", help="list records still failing (no later sync succeeded): why, and how many attempts")
    p.add_argument("connection", nargs="?", default=None, help="only this connection (default: all)")
    p.add_argument("--since", default=None, help="failed since (24h, 7d, or an ISO date/time)")
    p.add_argument("--record", default=None, help="only this record type (contact, invoice, credit-note, payment)")
    p.add_argument("--error", default=None, help="only this error class")
    p.add_argument("--limit", type=int, default=200, help="at most this many (newest first)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--dismiss", action="store_true",
                   help="set the listed failures aside (no replay): they leave this list until they fail again")
    p.add_argument("--reason", default=None, help="with --dismiss: why (kept in each record's audit trail)")
    p.set_defaults(func=cmd_failures)

    cli_backfill.register(sub)

    p = sub.add_parser("status", help="per connection: token and channel expiry, today's Xero calls, queues, "
                                      "parked work, failures, last sync, poll cursors")
    p.add_argument("--json", action="store_true", help="print the JSON the receiver's GET /status serves")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check", help="a few cheap authenticated calls to Xero and Zoho per connection: ok, or what to do")
    p.add_argument("connection", nargs="?", default=None, help="only this connection (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_check)
