"""`connector deals unassigned` and `connector deals link INVOICE DEAL`: the invoices no linking rule placed
(connector/mapping/deals.py), and a person's link, which every later sync keeps."""

from __future__ import annotations

import argparse
import json
import sys


def _connection(deps, number: int | None):
    connections = deps.store.connections.all()
    if number is not None:
        return deps.store.connections.get(number)
    return connections[0] if len(connections) == 1 else None


def cmd_deals_unassigned(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    deps = get_deps()
    wanted = [deps.store.connections.get(args.connection)] if args.connection else deps.store.connections.all()
    rows = [{"connection": c.id, **row} for c in wanted if c for row in deps.store.deal_links.unassigned(c.id)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("every invoice the connector has seen belongs to a deal (or was unlinked by a person in Zoho)")
        return 0
    print(f"{len(rows)} invoice(s) no rule placed; link each with `connector deals link INVOICE DEAL` "
          f"or by setting its Deal lookup in Zoho:")
    for row in rows:
        print(f"  #{row['connection']} invoice {row['invoice_id']} (contact {row['contact_id'] or '?'}): {row['reason']}")
    return 0


def cmd_deals_link(args: argparse.Namespace) -> int:
    """Link a Xero invoice to a Zoho deal: the invoice's lookup in Zoho, the stored decision ("manual"), the
    audit trail, and both deals' figures (the one it left and the one it joins)."""
    from connector.pipeline.deals import RECORD_TYPE
    from connector.store import audit as stages
    from workers.deps import get_deps
    from workers.zoho_tasks import make_zoho_push

    deps = get_deps()
    connection = _connection(deps, args.connection)
    if connection is None:
        print("say which connection with --connection (see `connector connections`)", file=sys.stderr)
        return 2
    snapshot = deps.store.snapshots.get(connection.id, "invoices", args.invoice)
    if snapshot is None:
        print(f"no Xero invoice {args.invoice} has been synced on connection #{connection.id}", file=sys.stderr)
        return 2
    sync = make_zoho_push(deps, connection).deals
    if not sync.zoho.get_records("Deals", [args.deal], ["Deal_Name"]):
        print(f"Zoho has no deal {args.deal}", file=sys.stderr)
        return 2
    previous = deps.store.deal_links.decisions(connection.id, [args.invoice]).get(args.invoice) or {}
    link = deps.store.links.get(connection.id, "invoice", args.invoice)
    if link is not None and sync.lookup_in_zoho:
        [result] = sync.zoho.update("Invoices", [{"id": link.zoho_id, deps.sync_config.invoice_deal_field: {"id": args.deal}}],
                                    trigger=deps.sync_config.trigger)
        if not result.ok:
            print(f"Zoho refused the link: {result.error_text}", file=sys.stderr)
            return 1
    contact = str((snapshot.payload.get("Contact") or {}).get("ContactID") or "") or None
    decision = {"deal_id": args.deal, "rule": "manual", "reason": "linked by hand (connector deals link)",
                "contact_id": contact}
    deps.store.deal_links.save(connection.id, {args.invoice: decision})
    deps.store.audit.record(connection_id=connection.id, record_type=RECORD_TYPE, record_id=args.invoice,
                            stage=stages.WRITTEN, detail={k: decision[k] for k in ("deal_id", "rule", "reason")})
    sync.total_deals({args.deal, previous.get("deal_id") or ""})
    print(f"invoice {args.invoice} now belongs to deal {args.deal}; later syncs keep it")
    return 0


def register(sub) -> None:
    p = sub.add_parser("deals", help="invoices and deals: list those no rule placed, link one by hand")
    deals = p.add_subparsers(dest="deals_command", required=True)
    q = deals.add_parser("unassigned", help="list the invoices no linking rule placed, with each rule's reason")
    q.add_argument("--connection", type=int, default=None, help="only this connection (default: all)")
    q.add_argument("--json", action="store_true", help="print JSON instead of lines")
    q.set_defaults(func=cmd_deals_unassigned)
    q = deals.add_parser("link", help="link a Xero invoice to a Zoho deal (kept by every later sync)")
    q.add_argument("invoice", help="the Xero InvoiceID")
    q.add_argument("deal", help="the Zoho deal's record id")
    q.add_argument("--connection", type=int, default=None, help="connection number (needed when there are several)")
    q.set_defaults(func=cmd_deals_link)
