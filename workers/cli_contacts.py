"""`connector link ZOHO_MODULE ZOHO_ID XERO_CONTACT_ID` and `connector create ZOHO_MODULE ZOHO_ID --name NAME`:
a person's answer to a new Zoho record parked as needs_review (connector/pipeline/to_xero/contacts.py).
Both are audited on the Zoho record; the audited outcome ends its listing in `connector failures`."""

from __future__ import annotations

import argparse
import sys
from functools import wraps
from typing import Any, Callable

from workers.cli_deals import _connection


def _vendor_failure_in_one_line(command: str):
    """Xero or Zoho failing (down, rate-limited, the grant lost) is the command's one line and exit 1, not a
    traceback. Running it again is safe: a create is sent under its idempotency key and first looks for the
    contact by its ContactNumber (connector/pipeline/to_xero/contacts.py), so it never makes a second one."""
    def decorate(run):
        @wraps(run)
        def guarded(args: argparse.Namespace) -> int:
            from connector.errors import ConnectorError, InvalidArgument

            try:
                return run(args)
            except InvalidArgument as exc:
                print(f"{command}: {exc}", file=sys.stderr)
                return 2
            except ConnectorError as exc:
                said = " ".join(str(exc).split()) or type(exc).__name__
                print(f"{command}: {said}. Nothing is lost; once that is fixed, run the same command again "
                      "(`connector connections` shows a connection that needs reconnecting)", file=sys.stderr)
                return 1
        return guarded
    return decorate


def _creation(args: argparse.Namespace):
    from workers.deps import get_deps
    from workers.zoho_tasks import make_contact_creation

    deps = get_deps()
    connection = _connection(deps, args.connection)
    if connection is None:
        print("say which connection with --connection (see `connector connections`)", file=sys.stderr)
        return None, None
    return connection, make_contact_creation(deps, connection)


def _zoho_id_problem(creation, module: str, zoho_id: str) -> str | None:
    """Why ``zoho_id`` names no record of ``module`` (Zoho record ids are digits), or None."""
    if not zoho_id.isdigit():
        return f"a Zoho record id is digits only (as in the record's URL); got {zoho_id!r}"
    if not creation.zoho.get_records(module, [zoho_id], ("id",)):
        return f"Zoho has no {module} record {zoho_id}"
    return None


def _on_zoho_record(command: str, args: argparse.Namespace, act: Callable[[Any, Any], Any]) -> Any:
    """``act(creation, connection)`` for the Zoho record ``args`` name, once its connection is found and its id
    checked; None (the reason on stderr) where any of that, or ``act``, refuses it (InvalidArgument)."""
    from connector.errors import InvalidArgument

    connection, creation = _creation(args)
    if creation is None:
        return None
    problem = _zoho_id_problem(creation, args.zoho_module, args.zoho_id.strip())
    try:
        if problem:
            raise InvalidArgument(problem)
        return act(creation, connection)
    except InvalidArgument as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None


@_vendor_failure_in_one_line("link")
def cmd_link(args: argparse.Namespace) -> int:
    from connector.pipeline.to_xero.contacts import link_to_existing

    outcome = _on_zoho_record("link", args, lambda creation, connection: link_to_existing(
        creation, connection.id, args.zoho_module, args.zoho_id, args.xero_contact_id))
    if outcome is None:
        return 2
    print(f"{args.zoho_module} {args.zoho_id} is linked to Xero contact {outcome.xero_contact_id}; "
          "later edits go both ways")
    return 0


@_vendor_failure_in_one_line("create")
def cmd_create(args: argparse.Namespace) -> int:
    from connector.pipeline.to_xero.contacts import ensure_xero_contact

    name = (args.name or "").strip()
    if not name:
        print("create: --name must not be empty", file=sys.stderr)
        return 2
    outcome = _on_zoho_record("create", args, lambda creation, connection: ensure_xero_contact(
        creation, connection.id, args.zoho_module, args.zoho_id, name=name, reason="connector create (operator)"))
    if outcome is None:
        return 2
    if not outcome.ok:
        print(f"create: {outcome.reason}", file=sys.stderr)
        return 1
    verb = "already linked to" if outcome.status == "linked" else f"{outcome.status}:"
    print(f"{args.zoho_module} {args.zoho_id} {verb} Xero contact {outcome.xero_contact_id}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("link", help="link a new Zoho Account or Contact to an existing Xero contact (no create)")
    p.add_argument("zoho_module", choices=("Accounts", "Contacts"), help="Accounts or Contacts")
    p.add_argument("zoho_id", help="the Zoho record id")
    p.add_argument("xero_contact_id", help="the Xero ContactID (`connector failures --json` lists the candidates)")
    p.add_argument("--connection", type=int, default=None, help="connection number (needed when there are several)")
    p.set_defaults(func=cmd_link)
    p = sub.add_parser("create", help="create a new Zoho Account or Contact in Xero under the name you give")
    p.add_argument("zoho_module", choices=("Accounts", "Contacts"), help="Accounts or Contacts")
    p.add_argument("zoho_id", help="the Zoho record id")
    p.add_argument("--name", required=True, help="the new Xero contact's name (unique among active contacts)")
    p.add_argument("--connection", type=int, default=None, help="connection number (needed when there are several)")
    p.set_defaults(func=cmd_create)
