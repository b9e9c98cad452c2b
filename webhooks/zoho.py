"""POST /webhooks/zoho: channel + token check, one task, {"status": "queued"}.

Zoho's page: https://www.zoho.com/crm/developer/docs/api/v8/notifications/enable.html

Zoho signs nothing; the echoed ``token`` registered with the channel is the only proof.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify

from connector import metrics
from connector.pipeline.common import new_sync_id
from connector.queues import INGEST_ZOHO_NOTIFICATION, ZOHO_QUEUE
from webhooks.receiver import raw_body, receiver
from webhooks.enqueue import EnqueueFailed
from connector.validation import value_problem

logger = logging.getLogger("webhooks.zoho")

zoho_blueprint = Blueprint("zoho", __name__)


class InvalidNotification(ValueError):
    pass


@zoho_blueprint.post("/webhooks/zoho")
def receive_zoho_notification() -> tuple[Response, int]:
    state = receiver()
    try:
        channel_id, token, notification = parse_zoho_notification(raw_body())
    except InvalidNotification as exc:
        logger.warning("webhook.zoho.invalid", extra={"reason": str(exc)})
        return jsonify(error=str(exc)), 400

    connection_id = state.zoho_channels.verify(channel_id, token)
    if connection_id is None:
        state.count_rejected_zoho_callback()
        logger.warning("webhook.zoho.rejected", extra={"channel_id": channel_id})
        return jsonify(error="unknown channel or wrong token"), 403

    notification["sync_id"] = new_sync_id()  # this change's trip, carried by every log line of it
    try:
        state.enqueue(INGEST_ZOHO_NOTIFICATION, [connection_id, notification], ZOHO_QUEUE)
    except EnqueueFailed as exc:
        logger.error("webhook.zoho.enqueue_failed", extra={"reason": str(exc), "channel_id": channel_id})
        return jsonify(error="could not queue the notification; try again later"), 503

    metrics.webhook_events_accepted("zoho")
    logger.info(
        "webhook.zoho.accepted",
        extra={"connection_id": connection_id, "channel_id": channel_id, "id_count": len(notification["ids"]),
               "record_type": notification["module"], "operation": notification["operation"],
               "sync_id": notification["sync_id"]},
    )
    return jsonify(status="queued"), 200


def parse_zoho_notification(body: bytes) -> tuple[str, str, dict]:
    """(channel_id, token, notification without the token); InvalidNotification if malformed."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidNotification("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidNotification("body must be a JSON object")

    missing = [name for name in ("channel_id", "module", "ids", "operation") if payload.get(name) in (None, "")]
    if missing:
        raise InvalidNotification(f"missing {', '.join(missing)}")
    channel_id = payload["channel_id"]
    # channel_id is a long when registered and comes back as a string: accept both.
    if isinstance(channel_id, bool) or not isinstance(channel_id, (str, int)):
        raise InvalidNotification("channel_id must be a string or an integer")
    token = payload.get("token", "")  # optional in Zoho; a missing token then fails verification
    if not isinstance(token, str):
        raise InvalidNotification("token must be a string")
    if not isinstance(payload["module"], str) or not isinstance(payload["operation"], str):
        raise InvalidNotification("module and operation must be strings")
    ids = payload["ids"]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        raise InvalidNotification("ids must be a non-empty list of record ids")
    affected_fields = payload.get("affected_fields") or []
    if not isinstance(affected_fields, list):
        raise InvalidNotification("affected_fields must be a list")
    problem = (value_problem(str(channel_id), "channel_id", is_id=True) or value_problem(token, "token")
               or value_problem(payload["module"], "module") or value_problem(payload["operation"], "operation")
               or next(filter(None, (value_problem(str(i), f"ids[{n}]", is_id=True) for n, i in enumerate(ids))), None)
               or value_problem(affected_fields, "affected_fields")
               or value_problem(payload.get("server_time"), "server_time"))
    if problem:
        raise InvalidNotification(problem)

    notification = {
        "module": payload["module"],
        "ids": [str(i) for i in ids],
        "operation": payload["operation"],
        "channel_id": str(channel_id),
        "server_time": payload.get("server_time"),
        "affected_fields": affected_fields,
    }
    return str(channel_id), token, notification
