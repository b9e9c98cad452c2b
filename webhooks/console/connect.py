"""Connect and fit: connect Xero (the tenants to link), then Zoho (its data centre), read the fit report, start the
backfill and follow it.

The connecting is the receiver's OAuth routes (webhooks/oauth.py over connector/connect.py): this page links to
them and their result pages lead back here. The fit report calls Xero and Zoho, so the page's form enqueues a task
(workers/console_tasks.py) and the page shows the report it stored (connector/fit_report.py), refreshing itself
until a newer one is there. The backfill starts on a worker too, as `connector backfill ID --detach` starts it;
its progress page refreshes itself (no script: the console's pages load none), and /progress.json serves the same
figures to a machine.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

from flask import current_app, jsonify, redirect, request

from connector import queues
from connector.fit_report import backfill_progress, connect_overview, zoho_connected
from connector.settings import ZOHO_ACCOUNTS_SERVERS
from webhooks.console import PAGE_HEADERS, console_blueprint, console_data, console_page, page
from webhooks.enqueue import EnqueueFailed
from webhooks.receiver import logger, receiver

REFRESH_SECONDS = 3


def _offers_connect() -> bool:
    """True when this receiver serves the OAuth connect routes (webhooks/oauth.py, registered with its flows)."""
    return "oauth" in current_app.blueprints


def _connection(connection_id: int):
    return console_data().store.connections.get(connection_id)


def _requested_at(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _checking(connections: list[dict]) -> int | None:
    """The connection whose fit report this page waits for (``?checking=ID&since=WHEN``), while its stored one is
    older than the request."""
    chosen, since = request.args.get("checking", ""), _requested_at(request.args.get("since", ""))
    for c in connections:
        if str(c["id"]) == chosen and since is not None:
            checked = _requested_at(c["fit"]["checked_at"]) if c["fit"] else None
            if checked is None or checked < since:
                return c["id"]
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _steps_page(*, status: int = 200, **context):
    """The steps page. Its Connect forms go to /oauth/*/start, which redirects to Xero's or Zoho's sign-in: the
    browser holds a form's redirects to the page's form-action too, so this page allows those origins (Xero's
    login, every Zoho data centre's accounts server, or the configured ones) and no other."""
    settings = console_data().deps.settings
    zoho = ZOHO_ACCOUNTS_SERVERS.values() if settings.zoho_accounts_url.rstrip("/") in ZOHO_ACCOUNTS_SERVERS.values() \
        else [settings.zoho_accounts_url]
    allowed = " ".join(dict.fromkeys(_origin(u) for u in (settings.xero_login_url, *zoho)))
    response = page("console/connect.html", section="connect", status=status, offers_connect=_offers_connect(),
                    data_centres=sorted(ZOHO_ACCOUNTS_SERVERS), **context)
    response.headers["Content-Security-Policy"] = PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {allowed}")
    return response


@console_blueprint.route("/connect", methods=["GET"])
@console_page
def connect():
    connections = connect_overview(console_data().deps)
    waiting = _checking(connections)
    return _steps_page(connections=connections, checking=waiting, refresh=REFRESH_SECONDS if waiting is not None
                       else None, notice="Checking: this page refreshes until the report is in." if waiting is not None
                       else None)


@console_blueprint.route("/connect/<int:connection_id>/check", methods=["POST"])
@console_page
def check(connection_id: int):
    if _connection(connection_id) is None:
        return _problem(f"There is no connection #{connection_id}: connect Xero first.", 404)
    # No #fragment: the page's refresh would reload a URL with one as a jump within the page, not a new request.
    return _queue_then_show(queues.FIT_CHECK, connection_id, "/console/connect", checking=connection_id)


@console_blueprint.route("/connect/<int:connection_id>/backfill", methods=["POST"])
@console_page
def start_backfill(connection_id: int):
    connection = _connection(connection_id)
    if connection is None:
        return _problem(f"There is no connection #{connection_id}: connect Xero first.", 404)
    if connection.state != "active":
        return _problem(f"Connection #{connection_id} is {connection.state}: reconnect it (step 1 or 2), then start "
                        "the backfill.", 409)
    if not zoho_connected(console_data().deps, connection_id):
        return _problem(f"Connection #{connection_id} has no Zoho org yet: connect Zoho (step 2) first.", 409)
    return _queue_then_show(queues.START_BACKFILL, connection_id, f"/console/connect/{connection_id}/backfill")


def _queue_then_show(queue: str, connection_id: int, path: str, **query):
    """Queue the connection's job on ``queue``, then redirect to ``path`` with ``query`` and ?since= (when it was
    asked for); after a change, a GET: reloading the page it shows never starts anything again."""
    since = console_data().now().isoformat()
    failed = _enqueue(queue, connection_id)
    if failed:
        return failed
    return redirect(f"{path}?{urlencode({**query, 'since': since})}", code=303)


@console_blueprint.route("/connect/<int:connection_id>/backfill", methods=["GET"])
@console_page
def backfill(connection_id: int):
    connection = _connection(connection_id)
    if connection is None:
        return _problem(f"There is no connection #{connection_id}.", 404)
    found = backfill_progress(console_data().deps, connection_id)
    # ?since=: the run queued then has not begun while the checkpoints show only an older one.
    since = _requested_at(request.args.get("since", ""))
    queued = found is None or (since is not None and _requested_at(found["updated_at"]) < since)
    done = not queued and found["state"] == "done"
    return page("console/connect_backfill.html", section="connect", connection=connection,
                progress=None if queued else found, refresh=None if done else REFRESH_SECONDS)


@console_blueprint.route("/connect/<int:connection_id>/backfill/progress.json", methods=["GET"])
@console_page
def backfill_json(connection_id: int):
    if _connection(connection_id) is None:
        return jsonify(error=f"no connection #{connection_id}"), 404
    found = backfill_progress(console_data().deps, connection_id)
    response = jsonify(found if found is not None else {"connection": connection_id, "state": "not started"})
    response.headers.update(PAGE_HEADERS)
    return response


def _enqueue(task: str, connection_id: int):
    try:
        receiver().enqueue(task, [connection_id], queues.MAINTENANCE_QUEUE)
    except EnqueueFailed as exc:
        logger.error("console.task_not_queued", extra={"task": task, "connection_id": connection_id,
                                                       "error": str(exc)})
        return _problem(f"Not queued ({exc}): check the broker and that a worker runs, then try again.", 503)
    logger.info("console.task_queued", extra={"task": task, "connection_id": connection_id})
    return None


def _problem(message: str, status: int):
    return _steps_page(status=status, connections=connect_overview(console_data().deps), checking=None, refresh=None,
                       problem=message)
