"""Operating commands of `connector`: replay, failures (and backfill, status, check).

workers/cli.py only registers them (``register``); each command's logic lives in connector/.
"""

from __future__ import annotations

import argparse
import json
import sys

from connector.errors import InvalidArgument


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
    from connector.replay import connection_id_of, list_failures
    from workers.deps import get_deps

    deps = get_deps()
    try:
        connection_id = None if args.connection is None else connection_id_of(args.connection, deps.store)
        failures = list_failures(deps.store, connection_id=connection_id, since=_parse_since(args.since, deps),
                                 record=args.record, error=args.error, limit=args.limit)
    except InvalidArgument as exc:
        print(f"failures: {exc}", file=sys.stderr)
        return 2
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
    print(f"{len(failures)} failed; replay them with `connector replay CONNECTION --failed` (same filters)")
    return 0


# -- backfill -------------------------------------------------------------------------------------


def cmd_backfill(args: argparse.Namespace) -> int:
    from connector.backfill import dry_run, resources_of
    from connector.pipeline.xero_in import PRIORITY_BACKFILL
    from connector.replay import connection_id_of
    from workers.deps import get_deps

    deps = get_deps()
    try:
        connection_id = connection_id_of(args.connection, deps.store)
        resources = resources_of(args.resources)
        since = _parse_since(args.since, deps)
        if args.budget is not None and args.budget < 1:
            raise InvalidArgument("--budget must be at least 1 call a day")
    except InvalidArgument as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    connection = deps.store.connections.get(connection_id)
    if args.dry_run:
        from tqdm import tqdm

        with tqdm(desc="listing (dry run)", unit=" records", disable=args.json) as bar:
            report = dry_run(connection_id, resources, since=since,
                             xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL), links=deps.store.links,
                             snapshots=deps.store.snapshots, config=deps.sync_config,
                             on_page=lambda resource, count: bar.update(count))
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
            return 0
        print(f"dry run for connection #{connection_id} (nothing was written):")
        for resource in resources:
            print(f"  {resource:<12} create {report.create[resource]:>7}  update {report.update[resource]:>7}  "
                  f"skip {report.skip[resource]:>7}")
        print(f"  cost: {report.xero_calls} Xero calls (spent on this listing too), "
              f"about {report.zoho_calls} Zoho write calls")
        return 0
    if connection.state != "active":
        print(f"backfill: connection #{connection_id} is {connection.state}; reconnect it first", file=sys.stderr)
        return 1
    deps.store.backfills.start(connection_id, resources, since=since, calls_per_day=args.budget)
    expect = _chain_start(deps.store.backfills, connection_id, resources)
    if deps.settings.embedded:
        return _backfill_here(deps, connection_id, expect)
    from workers.backfill_tasks import send_step

    if expect is not None:  # None: another sender took the backfill over meanwhile, and carries it on
        send_step(connection_id, expect)
    print(f"backfill of connection #{connection_id} queued ({', '.join(resources)}); it resumes from its checkpoint "
          f"after any crash. Watch it with `connector status`.")
    if args.detach:
        return 0
    return _watch(deps, connection_id)


def _bar_update(bar, state) -> None:
    total = state.records + (state.remaining or 0) if state.remaining is not None else None
    if total is not None and bar.total != total:
        bar.total = total
    bar.n = state.records
    bar.set_postfix_str(
        f"calls {state.calls}, budget left {'n/a' if state.budget_left is None else state.budget_left}, "
        f"ETA {state.eta.strftime('%Y-%m-%d %H:%M UTC') if state.eta else '?'}")
    bar.refresh()


def _chain_start(checkpoints, connection_id: int, resources: list[str]) -> tuple[str, int] | None:
    """The (resource, version) the first step of the chain just started expects. start() moved the
    versions of ``resources`` on; an unfinished resource of an earlier run that comes first is claimed."""
    from connector.backfill import first_pending

    first = first_pending(checkpoints, connection_id)
    if first is None:
        return None
    if first.resource in resources:
        return first.resource, first.version
    version = checkpoints.claim(first)
    return (first.resource, version) if version is not None else None


def _backfill_here(deps, connection_id: int, expect: tuple[str, int] | None) -> int:
    """Embedded default: the steps run in this process, each page pushed before the next is listed."""
    import time

    from tqdm import tqdm

    from connector.backfill import backfill_step, progress
    from connector.errors import RateLimited
    from connector.pipeline.xero_in import PRIORITY_BACKFILL
    from workers.backfill_tasks import budget
    from workers.zoho_tasks import make_zoho_push

    connection = deps.store.connections.get(connection_id)
    xero = deps.xero_client(connection, priority=PRIORITY_BACKFILL)

    def push(resource: str, ids: list[str], sync_ids: dict) -> None:
        pusher = make_zoho_push(deps, connection, priority=PRIORITY_BACKFILL)
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            if resource == "contacts":
                pusher.contacts(chunk, sync_ids)
            elif resource == "invoices":
                pusher.invoices(chunk, sync_ids)
            else:
                pusher.related(resource, chunk, sync_ids)

    with tqdm(desc=f"backfill #{connection_id}", unit=" records") as bar:
        while True:
            try:
                outcome = backfill_step(connection_id, xero=xero, checkpoints=deps.store.backfills, budget=budget(),
                                        snapshots=deps.store.snapshots, audit=deps.store.audit,
                                        clock=deps.store.clock, on_page=push, expect=expect)
            except RateLimited as exc:
                time.sleep(min(exc.retry_after, 60.0))
                continue
            state = progress(connection_id, checkpoints=deps.store.backfills, budget=budget(),
                             clock=deps.store.clock)
            _bar_update(bar, state)
            if outcome.state == "page" and outcome.expect is not None:
                expect = outcome.expect
                continue
            if outcome.state == "superseded" or (outcome.state == "page" and state.state != "done"):
                print(f"backfill of connection #{connection_id}: another run took it over and carries it on; "
                      f"watch it with `connector status`.")
                return 0
            if outcome.state in ("page", "done", "waiting"):
                break
    return _report(state)


def _report(state) -> int:
    if state.state == "done":
        print(f"backfill done: {state.records} records listed in {state.calls} calls")
    else:
        print(f"backfill paused for its daily Xero budget after {state.records} records ({state.calls} calls); "
              f"ETA {state.eta.isoformat(timespec='minutes') if state.eta else 'unknown'}. Run the same command "
              f"again to go on (workers with beat resume it on their own).")
    return 0


def _watch(deps, connection_id: int) -> int:
    import time

    from tqdm import tqdm

    from connector.backfill import progress
    from workers.backfill_tasks import budget

    try:
        with tqdm(desc=f"backfill #{connection_id}", unit=" records") as bar:
            while True:
                state = progress(connection_id, checkpoints=deps.store.backfills, budget=budget(),
                                 clock=deps.store.clock)
                _bar_update(bar, state)
                if state.state != "running":
                    break
                time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopped watching; the backfill goes on in the workers")
        return 0
    return _report(state)


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
        print(f"    Xero today: {calls['day_used']} used, {calls['day_left']} left of {calls['day_limit']} "
              f"({calls['day_left_for_backfill']} for backfill); this minute {calls['minute_used']}, "
              f"in flight {calls['in_flight']}")
        print(f"    tokens: xero until {c['tokens']['xero']['expires_at']}, zoho until {c['tokens']['zoho']['expires_at']}"
              f"; channels: {', '.join(ch['expires_at'] or '?' for ch in c['zoho_channels']) or 'none'}")
        print(f"    parked: {', '.join(f'{k}={v}' for k, v in c['parked'].items())}; failures 24h: "
              f"{', '.join(f'{k}={v}' for k, v in c['failures_24h'].items()) or 'none'}")
        print(f"    last success: {', '.join(f'{k} {v}' for k, v in c['last_success'].items()) or 'none yet'}")
        print("    poll cursors: " + ", ".join(f"{k} {v['modified_since'] or 'not polled'}"
                                                for k, v in c["poll_cursors"].items()))
        if c["backfill"]:
            b = c["backfill"]
            print(f"    backfill: {b['state']}, {b['records']} records, {b['calls']} calls, ETA {b['eta'] or '?'}")
    return 0


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
            if "error" in z:
                print(f"    zoho: PROBLEM: {z['error']}")
            else:
                print(f"    zoho: {'ok' if z['ok'] else 'PROBLEM'}; edition: {z.get('edition', '?')}; custom fields: "
                      + ("; ".join(f"{m}: {', '.join(f) or '-'}" for m, f in z.get("custom_fields", {}).items())
                         or "?"))
            todo += [side["todo"] for side in (x, z) if not side["ok"] and side["todo"] not in todo]
        if todo:
            print("to do:")
            for line in todo:
                print(f"  - {line}")
    if not results:
        print("no connections yet; run `connector connect xero`")
    return 0 if all(r["xero"]["ok"] and r["zoho"]["ok"] for r in results) else 1


# -- registration ---------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("replay", help="re-run the sync of some records, or of every failed one (see `failures`)")
    p.add_argument("connection", help="connection number (see `connector connections`)")
    p.add_argument("record", nargs="?",
                   help="contact(s), invoice(s), credit-note(s) or payment(s); with --failed, only this type")
    p.add_argument("ids", nargs="*", help="Xero ids of the records to replay")
    p.add_argument("--failed", action="store_true", help="replay every record whose latest sync failed")
    p.add_argument("--since", default=None, help="with --failed: failed since (24h, 7d, or an ISO date/time)")
    p.add_argument("--error", default=None, help="with --failed: only this error class (as `failures` shows it)")
    p.add_argument("--source", choices=["xero", "snapshot"], default="xero",
                   help="xero: fetch again (default); snapshot: push the stored copy without calling Xero")
    p.add_argument("--limit", type=int, default=1000, help="with --failed: at most this many records")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("failures", help="list records whose latest sync failed: why, and how many attempts")
    p.add_argument("connection", nargs="?", default=None, help="only this connection (default: all)")
    p.add_argument("--since", default=None, help="failed since (24h, 7d, or an ISO date/time)")
    p.add_argument("--record", default=None, help="only this record type (contact, invoice, credit-note, payment)")
    p.add_argument("--error", default=None, help="only this error class")
    p.add_argument("--limit", type=int, default=200, help="at most this many (newest first)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_failures)

    p = sub.add_parser("backfill", help="import the records that already exist in Xero (resumable, budget-aware)")
    p.add_argument("connection", help="connection number (see `connector connections`)")
    p.add_argument("--resources", default=None,
                   help="comma-separated: contacts,invoices,credit-notes,payments (default: all, in that order)")
    p.add_argument("--since", default=None, help="only records changed since (ISO date/time, or 30d, 12h)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be created, updated and skipped in Zoho, and the calls it costs; "
                        "write nothing")
    p.add_argument("--budget", type=int, default=None,
                   help="at most this many Xero calls per 24 hours for the backfill (default: whatever live "
                        "traffic leaves: the governor keeps 10%% of the day for it)")
    p.add_argument("--detach", action="store_true", help="queue it and return; do not show the progress bar")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the report as JSON")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("status", help="per connection: token and channel expiry, today's Xero calls, queues, "
                                      "parked work, failures, last sync, poll cursors")
    p.add_argument("--json", action="store_true", help="print the JSON the receiver's GET /status serves")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check", help="one cheap authenticated call to Xero and Zoho per connection: ok, or what to do")
    p.add_argument("connection", nargs="?", default=None, help="only this connection (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_check)
