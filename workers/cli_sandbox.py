"""`connector sandbox` (serve the simulators, with faults and deliveries) and `connector sandbox-control`
(drive a running one): rehearse failures against a real deployment of the connector."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FAULT_HELP = (
    "inject a fault: SYSTEM:KIND[:key=value,...], SYSTEM xero|zoho, KIND status|timeout|lost|latency|partial; "
    "keys: count, status, delay (seconds), path (path prefix), method, retry_after (header). "
    "E.g. zoho:status:status=500,count=3  zoho:latency:delay=20,method=POST  xero:status:status=429,count=30,"
    "retry_after=2  zoho:lost:path=/crm/v8/Invoices  zoho:partial:count=2 (repeatable)"
)


def parse_fault(text: str) -> dict:
    """``zoho:status:status=500,count=3`` -> keyword arguments of connector.sandbox.control.add_fault."""
    parts = text.split(":", 2)
    if len(parts) < 2 or parts[0] not in ("xero", "zoho"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected SYSTEM:KIND[:key=value,...] with SYSTEM xero or zoho")
    spec: dict = {"system": parts[0], "kind": parts[1]}
    for pair in filter(None, (parts[2] if len(parts) == 3 else "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{text!r}: {pair!r} is not key=value")
        if key in ("count", "status"):
            spec[key] = int(value)
        elif key == "delay":
            spec[key] = float(value)
        elif key == "path":
            spec["path_prefix"] = value
        elif key == "method":
            spec["method"] = value
        elif key == "retry_after":
            spec["headers"] = {"Retry-After": value}
        else:
            raise argparse.ArgumentTypeError(f"{text!r}: unknown key {key!r}")
    return spec


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connector.sandbox.common import serve
    from connector.sandbox.control import ControlError, SandboxControl, add_fault
    from connector.sandbox.xero import XeroSandbox
    from connector.sandbox.xero_seed import seed_demo_org
    from connector.sandbox.zoho import ZohoSandbox

    xero = XeroSandbox(webhook_key=args.xero_webhook_key) if args.xero_webhook_key else XeroSandbox()
    zoho = ZohoSandbox()
    control = SandboxControl(xero, zoho, token=args.control_token)
    with serve(control.wrap(xero), port=args.xero_port) as xs, serve(control.wrap(zoho), port=args.zoho_port) as zs:
        xero.base_url, zoho.base_url = xs.url, zs.url
        print(f"Xero sandbox:  {xs.url}   (API {xs.url}/api.xro/2.0, token {xs.url}/connect/token)")
        print(f"  XERO_CLIENT_ID={xero.client_id} XERO_CLIENT_SECRET={xero.client_secret}")
        print(f"  XERO_WEBHOOK_KEY={xero.webhook_key}")
        if args.tenant_name:
            tenant = control.add_tenant(args.tenant_name)
            print(f"  tenant {args.tenant_name!r} id={tenant['tenant_id']}")
            print(f"  refresh_token={tenant['refresh_token']}")
        print(f"Zoho sandbox:  {zs.url}   (API {zs.url}/crm/v8, token {zs.url}/oauth/v2/token)")
        print(f"  ZOHO_CLIENT_ID={zoho.client_id} ZOHO_CLIENT_SECRET={zoho.client_secret}")
        print(f"  refresh_token={zoho.issue_refresh_token()}")
        print(f"Control API:   {xs.url}/_sandbox/ and {zs.url}/_sandbox/  (Authorization: Bearer {control.token})")
        if args.seed and args.tenant_name:
            seed_demo_org(xero, tenant["tenant_id"], contacts=args.seed)
            print(f"seeded {args.seed} contacts; {len(xero.pending_events())} webhook events pending")
        for spec in args.fault:
            try:
                add_fault(xero, zoho, **spec)
            except ControlError as exc:
                print(f"bad --fault: {exc}", file=sys.stderr)
                return 2
            print(f"fault queued: {spec}")
        if args.info_file:
            # Written last and renamed into place: whoever waits for the file sees it whole and the API up.
            info = {"xero_url": xs.url, "zoho_url": zs.url, "control_token": control.token}
            tmp = Path(args.info_file).with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(args.info_file)
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                if args.deliver_to and xero.pending_events():
                    # Like Xero: undelivered events stay pending and are sent again later.
                    print(f"delivered webhooks to {args.deliver_to}: HTTP {xero.deliver_webhooks(args.deliver_to)}",
                          flush=True)
                if args.deliver_zoho and zoho.pending_notifications():
                    print(f"delivered Zoho notifications: HTTP {zoho.deliver_notifications()}", flush=True)
                time.sleep(1.0)
        except KeyboardInterrupt:
            return 0


def cmd_sandbox_control(args: argparse.Namespace) -> int:
    """One call to the control API of a running `connector sandbox`."""
    import requests

    base = args.url.rstrip("/") + "/_sandbox/"
    headers = {"Authorization": f"Bearer {args.token}"}
    calls: list[tuple[str, str, dict | None]] = []
    if args.clear_faults:
        calls.append(("DELETE", "faults", None))
    calls += [("POST", "faults", spec) for spec in args.fault]
    if args.lapse_channels:
        calls.append(("POST", "zoho/channels/lapse", {}))
    if args.deliver_webhooks:
        calls.append(("POST", "xero/deliver", {"url": args.deliver_webhooks}))
    if args.deliver_zoho:
        calls.append(("POST", "zoho/deliver", {}))
    if not calls:
        print("nothing to do: give --fault, --clear-faults, --lapse-channels, --deliver-webhooks or --deliver-zoho",
              file=sys.stderr)
        return 2
    for method, path, body in calls:
        try:
            answer = requests.request(method, base + path, json=body, headers=headers, timeout=60)
        except requests.RequestException as exc:
            print(f"{method} {path}: sandbox unreachable ({type(exc).__name__})", file=sys.stderr)
            return 1
        print(f"{method} {path}: HTTP {answer.status_code} {answer.text.strip()}")
        if answer.status_code != 200:
            return 1
    return 0


def add_sandbox_parsers(sub) -> None:
    p = sub.add_parser("sandbox", help="serve the Xero and Zoho simulators on 127.0.0.1 (with a control API)")
    p.add_argument("--xero-port", type=int, default=8101, help="port of the Xero simulator (0: any free port)")
    p.add_argument("--zoho-port", type=int, default=8102, help="port of the Zoho simulator (0: any free port)")
    p.add_argument("--xero-webhook-key", default=None, help="the webhook signing key Xero uses (default: fixed)")
    p.add_argument("--tenant-name", default="Sandbox Organisation Ltd",
                   help="create one tenant with this name at start ('' for none)")
    p.add_argument("--seed", type=int, default=25, help="contacts to seed in the tenant (0 for none)")
    p.add_argument("--deliver-to", default=None, metavar="URL",
                   help="POST pending Xero webhooks (signed) to this receiver URL every second")
    p.add_argument("--deliver-zoho", action="store_true",
                   help="POST pending Zoho notifications to their channels' notify URLs every second")
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    p.add_argument("--control-token", default=None,
                   help="bearer token of the /_sandbox/ control API (default: a random one, printed)")
    p.add_argument("--info-file", default=None, metavar="PATH",
                   help="write {xero_url, zoho_url, control_token} as JSON here once serving")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("sandbox-control", help="inject faults into, or trigger deliveries of, a running sandbox")
    p.add_argument("url", help="either simulator's base URL, e.g. http://127.0.0.1:8101")
    p.add_argument("--token", required=True, help="the control token `connector sandbox` printed")
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    p.add_argument("--clear-faults", action="store_true", help="drop every queued fault first")
    p.add_argument("--lapse-channels", action="store_true", help="let every live Zoho notification channel lapse")
    p.add_argument("--deliver-webhooks", default=None, metavar="RECEIVER_URL",
                   help="POST pending Xero webhooks to this receiver URL now")
    p.add_argument("--deliver-zoho", action="store_true", help="POST pending Zoho notifications now")
    p.set_defaults(func=cmd_sandbox_control)
