"""Mapping: the active mapping file, validated, and how one stored Xero record maps to Zoho with it."""

from __future__ import annotations

from flask import request

from connector.errors import InvalidArgument
from connector.json_codec import dumps_lenient
from connector.pipeline.common import RECORD_TYPES
from webhooks.console import console_blueprint, console_data, console_page, page


@console_blueprint.route("/mapping", methods=["GET"])
@console_page
def mapping():
    data = console_data()
    chosen = {name: request.args.get(name, "").strip()[:200] for name in ("connection", "record", "id")}
    preview, problem = None, None
    if chosen["id"]:
        try:
            if not chosen["connection"].isdigit():
                raise InvalidArgument("choose the connection the record belongs to")
            preview = data.preview(int(chosen["connection"]), chosen["record"] or "invoice", chosen["id"])
        except InvalidArgument as exc:
            problem = str(exc)
    return page("console/mapping.html", section="mapping", view=data.mapping(), chosen=chosen, preview=preview,
                problem=problem, connections=data.connection_ids(),
                record_types=("contact", "invoice"), all_types=sorted(set(RECORD_TYPES.values())),
                as_json=lambda value: dumps_lenient(value, indent=2, ensure_ascii=False))
