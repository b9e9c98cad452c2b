"""The `connector` command: demo, sandbox (and sandbox-control), worker, beat, receiver, migrate, connections,
audit, setup-zoho, keygen, flower, run, and the operating commands of workers/cli_ops.py (replay, failures,
status, check) and workers/cli_backfill.py (backfill)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    return run_demo(contacts=args.contacts, data_dir=Path(args.data_dir) if args.data_dir else None)


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
    from connector import logs
    from workers.deps import get_deps

    logs.show_migrations()
    get_deps().store  # opening the store runs the migrations
    print("database is at the latest schema")
    return 0


def cmd_connections(args: argparse.Namespace) -> int:
    """Each connection: state, token expiry (of the token set it uses), Zoho org, channel expiry, parked work."""
    from workers.deps import get_deps

    deps = get_deps()
    rows = deps.store.connections.all()
    if not rows:
        print("no connections yet; run `connector connect xero`")
        return 0

    def stamp(moment) -> str:
        return moment.isoformat(timespec="seconds") if moment else "none"

    for c in rows:
        expiry = {}
        for system in ("xero", "zoho"):
            owner = deps.credentials.owner_of(c.id, system)
            stored = deps.credentials.load(owner, system)
            shared = f" (shared with #{owner})" if owner != c.id else ""
            expiry[system] = (stamp(stored.tokens.expires_at) if stored else "none") + shared
        channels = deps.store.channels.for_connection(deps.credentials.owner_of(c.id, "zoho"))
        print(
            f"#{c.id} {c.name} tenant={c.xero_tenant_id} state={c.state}"
            f"{' (' + c.state_reason + ')' if c.state_reason else ''}\n"
            f"    xero_token_expires={expiry['xero']} zoho_token_expires={expiry['zoho']}\n"
            f"    zoho_org={c.zoho_org_id or 'none'} api_domain={c.zoho_api_domain or 'none'} "
            f"channel_expires={stamp(min((ch.expires_at for ch in channels), default=None))} "
            f"parked={deps.store.parked.count(c.id)}"
        )
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    """Print the authorise URL, catch the redirect on loopback (or read it pasted), finish the flow."""
    from connector.connect import ConnectFailed
    from connector.errors import ConnectorError
    from workers.deps import get_deps

    flows = get_deps().connector()
    redirect_uri = args.redirect_uri or f"http://localhost:8765/oauth/{args.system}/callback"
    connection_ids = [*args.connections, *args.connection]
    if args.system == "xero":
        if connection_ids:
            print("connect xero takes no connection id: it makes the connections (see --tenant, --zoho-from)",
                  file=sys.stderr)
            return 2
        options = {"tenant_ids": args.tenant or None, "zoho_from": args.zoho_from, "scopes": args.scopes}
    else:
        if not connection_ids:
            print("connect zoho needs the connection id, e.g. `connector connect zoho 1` (see `connector connections`)",
                  file=sys.stderr)
            return 2
        options = {"connection_ids": connection_ids, "dc": args.dc}
    try:
        with LoopbackRedirect(redirect_uri, enabled=not args.paste) as catcher:
            url = flows.start(args.system, redirect_uri=redirect_uri, **options)
            print(f"Open this URL to authorise {args.system}:\n{url}", flush=True)
            redirected = input("Paste the URL you were sent back to: ") if args.paste else catcher.wait(args.timeout)
        connections = flows.finish_from_url(args.system, redirected.strip())
    except (ConnectFailed, ConnectorError) as exc:
        print(f"connect failed: {exc}", file=sys.stderr)
        return 1
    for c in connections:
        print(f"connected #{c.id} {c.name} (tenant {c.xero_tenant_id}) state={c.state}"
              f"{' zoho_org=' + c.zoho_org_id if c.zoho_org_id else ''}")
    return 0


class LoopbackRedirect:
    """Listens on the redirect URI's loopback port for the one browser redirect that ends a connect flow."""

    def __init__(self, redirect_uri: str, *, enabled: bool = True) -> None:
        from urllib.parse import urlsplit

        self.parts = urlsplit(redirect_uri)
        self.enabled = enabled
        self.caught: str | None = None
        self.server = None

    def __enter__(self) -> "LoopbackRedirect":
        if not self.enabled:
            return self
        from http.server import BaseHTTPRequestHandler, HTTPServer
        from urllib.parse import urlsplit

        from connector.connect import ConnectFailed

        if self.parts.hostname not in ("localhost", "127.0.0.1"):
            raise ConnectFailed("the redirect URI is not on this machine; use --paste to finish by hand")
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != catcher.parts.path:
                    self.send_response(404)
                    self.end_headers()
                    return
                catcher.caught = f"{catcher.parts.scheme}://{catcher.parts.netloc}{self.path}"
                body = b"Connected. You can close this window and go back to the terminal."
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # the query string holds the authorization code
                pass

        # Bound before the URL is printed, so the redirect can never arrive before we listen.
        self.server = HTTPServer(("127.0.0.1", self.parts.port or 80), Handler)
        self.server.timeout = 0.25
        return self

    def wait(self, timeout: float) -> str:
        from connector.connect import ConnectFailed

        deadline = time.monotonic() + timeout
        while self.caught is None and time.monotonic() < deadline:
            self.server.handle_request()
        if self.caught is None:
            raise ConnectFailed(f"no redirect reached {self.parts.geturl()} within {timeout:.0f}s; try again or --paste")
        return self.caught

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.server_close()


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret under a new vault key, in steps that never stop a running process."""
    from connector.store.vault import Vault
    from workers.deps import get_deps

    deps = get_deps()
    ring = [entry.strip() for entry in deps.settings.vault_keys.reveal().split(",") if entry.strip()]
    if not ring:
        print("CONNECTOR_VAULT_KEYS is not set; rotation needs the current key ring", file=sys.stderr)
        return 2
    known = {entry.partition(":")[0]: entry for entry in ring}
    if args.new_key_id not in known:
        new_ring = ",".join([*ring, Vault.generate_keyring(args.new_key_id)])
        print("Step 1 of 3. Deploy this key ring to every process (the new key only decrypts for now):")
        print(f"CONNECTOR_VAULT_KEYS={new_ring}")
        print(f"then run `connector rotate-keys --new-key-id {args.new_key_id}` again.")
        return 0
    new_ring = ",".join([known[args.new_key_id], *(e for e in ring if e != known[args.new_key_id])])
    rewritten = deps.credentials.rotate_keys(Vault(new_ring))
    print(f"Step 2 of 3. Re-encrypted {rewritten} credential(s) under {args.new_key_id!r}. Now deploy:")
    print(f"CONNECTOR_VAULT_KEYS={new_ring}")
    print(f"Step 3 of 3. Once every process runs with it, run `connector rotate-keys --new-key-id "
          f"{args.new_key_id}` once more (it re-encrypts anything written meanwhile) and drop the old key(s).")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    deps = get_deps()
    for entry in deps.store.audit.trail(args.connection, args.type, args.id):
        repeated = (f" x{entry.times} (last {entry.last_at.isoformat(timespec='milliseconds')})"
                    if entry.times > 1 and entry.last_at else "")
        print(f"{entry.created_at.isoformat(timespec='milliseconds')} {entry.stage:<9}{repeated} "
              f"sync_id={entry.sync_id} task_id={entry.task_id or '-'} {entry.detail}")
    return 0


# Trails kept under a Zoho record's id rather than a Xero record's: an invoice's deal decisions, payment notes,
# won deals (pipeline/deals.py, pipeline/to_xero/deals.py).
ZOHO_SIDE_TRAILS = ("invoice_deal", "payment_note", "won_deal")


def _record_type(text: str) -> str:
    """The record type the audit trail stores, for any spelling `failures` and `replay` take (and the trails
    kept under Zoho ids, by their own names)."""
    from connector.errors import InvalidArgument
    from connector.pipeline.common import RECORD_TYPES
    from connector.replay import resource_of

    if text in ZOHO_SIDE_TRAILS:
        return text
    try:
        return RECORD_TYPES[resource_of(text)]
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_setup_zoho(args: argparse.Namespace) -> int:
    """Check (--check) or create the custom fields the connector needs in each connected Zoho org."""
    from connector.zoho_setup import needed_for, setup_zoho_orgs
    from workers.deps import get_deps

    deps = get_deps()
    wanted = [deps.store.connections.get(i) for i in args.connection] if args.connection else deps.store.connections.all()
    if not wanted or None in wanted:
        print("no such connection; see `connector connections`" if wanted else
              "no connections yet; run `connector connect xero` then `connector connect zoho`", file=sys.stderr)
        return 2
    orgs = {}  # one check per Zoho org: connections sharing a token set share the org
    for c in wanted:
        owner = deps.credentials.owner_of(c.id, "zoho")
        orgs.setdefault(owner, (f"Zoho org {c.zoho_org_id or '?'} (connection #{c.id} {c.name})",
                                deps.zoho_client_for(owner)))
    return setup_zoho_orgs(list(orgs.values()), check_only=args.check, out=sys.stdout,
                           needed=needed_for(deps.sync_config))


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    from workers.cli_sandbox import add_sandbox_parsers

    try:
        installed = version("ml-connector")
    except PackageNotFoundError:  # running from a checkout that was never installed
        installed = "unknown"
    parser = argparse.ArgumentParser(prog="connector", description="Keep Xero and Zoho CRM in sync.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default against the sandbox")
    p.add_argument("--contacts", type=int, default=25, help="contacts to seed in the sandbox tenant (default 25)")
    p.add_argument("--data-dir", default=None,
                   help="where the demo keeps its SQLite database, emptied first (default: the folder demo in "
                        "CONNECTOR_DATA_DIR, else var/demo); a folder holding anything but an earlier demo's files "
                        "is refused")
    p.set_defaults(func=cmd_demo)

    add_sandbox_parsers(sub)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--queues", default="xero,zoho,maintenance", help="comma-separated queues to consume")
    p.add_argument("--concurrency", type=int, default=4, help="worker child processes (default 4)")
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR (LOG_LEVEL wins when set)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="run Celery beat (token refresh and other schedules)")
    p.add_argument("--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR (LOG_LEVEL wins when set)")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("receiver", help="run the webhook receiver (development server; use gunicorn in production)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("migrate", help="bring the database to the latest schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("connections", help="list connections: state, token and channel expiry, parked work")
    p.set_defaults(func=cmd_connections)

    p = sub.add_parser("connect", help="connect Xero tenants or a Zoho org (OAuth consent in a browser)")
    p.add_argument("system", choices=["xero", "zoho"], help="which side to connect")
    p.add_argument("connections", type=int, nargs="*", metavar="CONNECTION",
                   help="zoho: the connection(s) this Zoho org receives (as --connection)")
    p.add_argument("--redirect-uri", default=None,
                   help="registered redirect URI (default http://localhost:8765/oauth/SYSTEM/callback)")
    p.add_argument("--paste", action="store_true", help="paste the redirect URL instead of catching it on loopback")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the redirect")
    p.add_argument("--tenant", action="append", default=[], help="xero: link only this tenant id (repeatable)")
    p.add_argument("--scopes", default=None, help="xero: 'broad', 'granular' or a scope string (default XERO_SCOPES)")
    p.add_argument("--zoho-from", type=int, default=None,
                   help="xero: send the tenants to the Zoho org this connection already uses")
    p.add_argument("--connection", type=int, action="append", default=[],
                   help="zoho: the connection(s) this Zoho org receives (repeatable)")
    p.add_argument("--dc", default=None, help="zoho: data centre (us, eu, in, au, jp, ca, sa, cn, uk)")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("rotate-keys", help="re-encrypt stored secrets under a new vault key (no downtime)")
    p.add_argument("--new-key-id", required=True, help="id of the new key in the ring, e.g. k2")
    p.set_defaults(func=cmd_rotate_keys)

    p = sub.add_parser("audit", help="show the audit trail of one record")
    p.add_argument("connection", type=int, help="connection id (see `connector connections`)")
    p.add_argument("type", type=_record_type, help="record type: contact, invoice, credit-note or payment; "
                   "or invoice_deal, payment_note, won_deal")
    p.add_argument("id", help="the Xero id of the record (the Zoho id for invoice_deal, payment_note, won_deal)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("setup-zoho", help="create the custom fields the connector needs in Zoho (--check: only list them)")
    p.add_argument("--connection", type=int, action="append", default=[], help="only this connection's org (repeatable)")
    p.add_argument("--check", action="store_true", help="print what is missing and exit 1 if anything is")
    p.set_defaults(func=cmd_setup_zoho)

    from workers import cli_alerts, cli_contacts, cli_deals, cli_flower, cli_keygen, cli_ops, cli_run

    cli_alerts.register(sub)
    cli_deals.register(sub)
    cli_contacts.register(sub)  # link, create
    cli_keygen.register(sub)
    cli_flower.add_parser(sub)
    cli_run.add_parser(sub)
    cli_ops.register(sub)  # replay, failures, backfill, status, check
    return parser


# Commands that never touch production state, and those that check for themselves (celery's
# worker and beat do it on their start-up signals). Every other command, including any added
# later, fails closed without its configuration.
NO_START_CHECK = {"demo", "sandbox", "sandbox-control", "keygen", "worker", "beat"}
START_CHECK_PROCESS = {"migrate": "migrate", "receiver": "receiver", "connect": "connect", "flower": "flower",
                       "run": "run"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from connector.errors import ConfigError, ZohoNotConnected

    try:
        from connector.settings import load_env_file

        load_env_file()
        # Checked before logging is set up: a refusal is its one line, with nothing logged before it.
        if args.command not in NO_START_CHECK:
            from workers.deps import get_deps
            from workers.startup import check_can_start

            check_can_start(START_CHECK_PROCESS.get(args.command, "cli"), get_deps().settings)
        if args.command not in ("worker", "beat", "demo", "flower"):  # those set up their own logging
            from connector import logs

            logs.setup("run" if args.command == "run" else "cli")
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except ZohoNotConnected as exc:  # work run in this process (embedded default) before Zoho is connected
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
