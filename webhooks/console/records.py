"""Records: find a record by Xero id, invoice number, contact name or email; open its trail and its Zoho record."""

from __future__ import annotations

from flask import abort, request

from connector.errors import InvalidArgument
from webhooks.console import console_blueprint, console_data, console_page, page


@console_blueprint.route("/records", methods=["GET"])
@console_page
def records():
    query = request.args.get("q", "").strip()[:200]
    found = console_data().search(query) if query else []
    return page("console/records.html", section="records", query=query, found=found)


@console_blueprint.route("/records/<int:connection_id>/<record_type>/<path:xero_id>", methods=["GET"])
@console_page
def record(connection_id: int, record_type: str, xero_id: str):
    try:
        view = console_data().record(connection_id, record_type, xero_id)
    except InvalidArgument:
        abort(404)
    return page("console/record.html", section="records", record=view)
