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
