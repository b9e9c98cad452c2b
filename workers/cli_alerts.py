"""`connector alerts`: send a test message to every configured channel (`test`), or evaluate the alerts
now and print the open incidents (`check`), as beat does every minute."""

from __future__ import annotations

import argparse
import sys


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from connector.alert_delivery import DeliveryFailed
    from connector.alerts import test_message
    from workers.deps import get_deps

    deps = get_deps()
    channels = deps.alert_channels
    if not channels:
        print("alerts test: no channel configured; set CONNECTOR_ALERT_WEBHOOK and/or CONNECTOR_SMTP_HOST "
              "(with CONNECTOR_SMTP_FROM and CONNECTOR_SMTP_TO)", file=sys.stderr)
        return 2
    body = test_message(deps.clock.now())
    failed = 0
    for name, send in sorted(channels.items()):
        try:
            send(body)
            print(f"{name}: sent")
        except DeliveryFailed as exc:
            print(f"{name}: NOT sent: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    from connector.status import open_alerts
    from workers.deps import get_deps

    deps = get_deps()
    report = deps.check_alerts()
    if report is None:
        print("alerts check: the evaluation failed (see the log line above); beat tries again every minute",
              file=sys.stderr)
        return 1
    if not report.ran:
        print("alerts check: another process is evaluating right now; try again in a minute", file=sys.stderr)
        return 1
    for event, key in report.sent:
        print(f"sent {event}: {key}")
    for event, key, channel in report.failed:
        print(f"NOT sent {event} to {channel}: {key} (retried next minute)", file=sys.stderr)
    incidents = open_alerts(deps)
    for alert in incidents:
        print(f"OPEN {alert['incident']}: {alert['title']} (since {alert['since'] or '?'}); fix: {alert['fix']}")
    if not incidents:
        print("no open incident")
    return 0


def register(sub) -> None:
    p = sub.add_parser("alerts", help="alerts: send a test message, or evaluate now and list open incidents")
    alerts = p.add_subparsers(dest="alerts_command", required=True)
    q = alerts.add_parser("test", help="send a test message to the webhook and/or by e-mail")
    q.set_defaults(func=cmd_alerts_test)
    q = alerts.add_parser("check", help="evaluate the alerts now (sending what is due) and list the open incidents")
    q.set_defaults(func=cmd_alerts_check)
