"""The `connector` command: demo, sandbox, worker, beat, receiver, migrate, connections, audit, replay."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    return run_demo(contacts=args.contacts, data_dir=Path(args.data_dir))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connector.sandbox.common import serve
    from connector.sandbox.xero import XeroSandbox
    from connector.sandbox.xero_seed import seed_demo_org
    from connector.sandbox.zoho import ZohoSandbox

    xero = XeroSandbox(webhook_key=args.xero_webhook_key) if args.xero_webhook_key else XeroSandbox()
    zoho = ZohoSandbox()
    with serve(xero, port=args.xero_port) as xs, serve(zoho, port=args.zoho_port) as zs:
        tenant = xero.add_tenant(args.tenant_name)
        grant = xero.issue_grant([tenant])
        print(f"Xero sandbox:  {xs.url}   (API {xs.url}/api.xro/2.0, token {xs.url}/connect/token)")
        print(f"  XERO_CLIENT_ID={xero.client_id} XERO_CLIENT_SECRET={xero.client_secret}")
        print(f"  XERO_WEBHOOK_KEY={xero.webhook_key}")
        print(f"  tenant {args.tenant_name!r} id={tenant}")
        print(f"  refresh_token={grant['refresh_token']}")
        print(f"Zoho sandbox:  {zs.url}   (API {zs.url}/crm/v8, token {zs.url}/oauth/v2/token)")
        print(f"  ZOHO_CLIENT_ID={zoho.client_id} ZOHO_CLIENT_SECRET={zoho.client_secret}")
        print(f"  refresh_token={zoho.issue_refresh_token()}")
        if args.seed:
            seed_demo_org(xero, tenant, contacts=args.seed)
            print(f"seeded {args.seed} contacts; {len(xero.pending_events())} webhook events pending")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                if args.deliver_to and xero.pending_events():
                    # Like Xero: undelivered events stay pending and are sent again later.
                    print(f"delivered webhooks to {args.deliver_to}: HTTP {xero.deliver_webhooks(args.deliver_to)}",
                          flush=True)
                time.sleep(1.0)
        except KeyboardInterrupt:
            return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.app import app

    argv = ["worker", "--loglevel", args.loglevel, "-Q", args.queues, "--concurrency", str(args.concurrency)]
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    from workers.app import app

    app.start(["beat", "--loglevel", args.loglevel])
    return 0


def cmd_receiver(args: argparse.Namespace) -> int:
    from webhooks.wsgi import build_receiver
    from workers.deps import get_deps

    receiver = build_receiver()
    if get_deps().settings.embedded:
        # No Redis: the in-process broker only reaches workers in this process, so run one here.
        from workers.embedded import EmbeddedWorker

        with EmbeddedWorker():
            receiver.run(host=args.host, port=args.port)
        return 0
    receiver.run(host=args.host, port=args.port)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    get_deps().store  # opening the store runs the migrations
    print("database is at the latest schema")
    return 0


def cmd_connections(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    deps = get_deps()
    rows = deps.store.connections.all()
    if not rows:
        print("no connections yet")
        return 0
    for c in rows:
        tokens = {s: deps.credentials.load(c.id, s) for s in ("xero", "zoho")}
        expiry = {s: (t.tokens.expires_at.isoformat(timespec="seconds") if t else "none") for s, t in tokens.items()}
        print(
            f"#{c.id} {c.name} tenant={c.xero_tenant_id} state={c.state}"
            f"{' (' + c.state_reason + ')' if c.state_reason else ''} "
            f"xero_token_expires={expiry['xero']} zoho_token_expires={expiry['zoho']}"
        )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    deps = get_deps()
    for entry in deps.store.audit.trail(args.connection, args.type, args.id):
        print(f"{entry.created_at.isoformat(timespec='milliseconds')} {entry.stage:<9} {entry.detail}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from workers.deps import get_deps
    from workers.maintenance_tasks import replay

    deps = get_deps()
    if args.failed:
        failures = deps.store.audit.failures(connection_id=args.connection, limit=args.limit)
        targets: dict[str, list[str]] = {}
        for entry in failures:
            if entry.direction == "xero_to_zoho" and entry.record_type in ("contact", "invoice", "creditnote"):
                targets.setdefault(entry.record_type + "s", []).append(entry.record_id)
    else:
        targets = {args.type + "s": [args.id]}
    for resource, ids in targets.items():
        replay.apply_async(args=[args.connection, resource, sorted(set(ids))])
        print(f"queued replay of {len(set(ids))} {resource}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description="Keep Xero and Zoho CRM in sync.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default against the sandbox")
    p.add_argument("--contacts", type=int, default=25)
    p.add_argument("--data-dir", default="var/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sandbox", help="serve the Xero and Zoho simulators on 127.0.0.1")
    p.add_argument("--xero-port", type=int, default=8101)
    p.add_argument("--zoho-port", type=int, default=8102)
    p.add_argument("--xero-webhook-key", default=None)
    p.add_argument("--tenant-name", default="Sandbox Organisation Ltd")
    p.add_argument("--seed", type=int, default=25, help="contacts to seed in the tenant (0 for none)")
    p.add_argument("--deliver-to", default=None, metavar="URL",
                   help="POST pending Xero webhooks (signed) to this receiver URL every second")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--queues", default="xero,zoho,maintenance")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="run Celery beat (token refresh and other schedules)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("receiver", help="run the webhook receiver (development server; use gunicorn in production)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("migrate", help="bring the database to the latest schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("connections", help="list connections with their state and token expiry")
    p.set_defaults(func=cmd_connections)

    p = sub.add_parser("audit", help="show the audit trail of one record")
    p.add_argument("connection", type=int)
    p.add_argument("type", choices=["contact", "invoice", "creditnote"])
    p.add_argument("id")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("replay", help="re-run the sync of one record, or of every failed one")
    p.add_argument("connection", type=int)
    p.add_argument("type", nargs="?", choices=["contact", "invoice", "creditnote"])
    p.add_argument("id", nargs="?")
    p.add_argument("--failed", action="store_true", help="replay every record whose last sync failed")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and not args.failed and not (args.type and args.id):
        parser.error("replay needs TYPE and ID, or --failed")
    from connector.errors import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
