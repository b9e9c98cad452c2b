"""POST /webhooks/xero: raw body, signature, envelope, one task, empty 200.

Xero's rules for the receiver: https://developer.xero.com/documentation/webhooks/configuring-your-server.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from connector import metrics
from connector.pipeline.common import RECORD_TYPES, XERO_CATEGORIES, webhook_sync_ids
from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from connector.xero.webhook_body import InvalidEnvelope, body_text, read_events
from webhooks.receiver import raw_body, receiver
from webhooks.enqueue import EnqueueFailed
from webhooks.signatures import verify_xero_signature

logger = logging.getLogger("webhooks.xero")

xero_blueprint = Blueprint("xero", __name__)


def _empty(status: int) -> Response:
    # Xero wants an empty body and no cookies, for 200 and 401 alike (see above).
    return Response(b"", status=status)


@xero_blueprint.post("/webhooks/xero")
def receive_xero_webhook() -> Response:
    state = receiver()
    # The raw bytes, before any JSON parsing: the HMAC covers them exactly.
    body = raw_body()

    key = state.webhook_key.reveal()
    if not key:
        # Fail closed: an empty key would let anyone compute a valid signature.
        logger.error("webhook.xero.no_signing_key")
        return _empty(401)
    if not verify_xero_signature(body, request.headers.get("x-xero-signature"), key):
        logger.warning("webhook.xero.bad_signature", extra={"body_bytes": len(body)})
        return _empty(401)

    try:
        text = body_text(body)
        events = read_events(text)
    except InvalidEnvelope as exc:
        logger.warning("webhook.xero.invalid", extra={"reason": str(exc)})
        return jsonify(error=str(exc)), 400

    if not events:
        # Intent to Receive probe: correctly signed, nothing to do.
        logger.info("webhook.xero.intent_to_receive")
        return _empty(200)

    # The correlation id of each record's trip starts here and travels with its event (logs carry it), with
    # the time it was accepted in it (connector/pipeline/common.py).
    sync_ids = webhook_sync_ids(len(events))
    try:
        # The body as received (checked above; the worker takes what it needs of each event).
        state.enqueue(INGEST_XERO_EVENTS, [text, sync_ids], XERO_QUEUE)
    except EnqueueFailed as exc:
        # Not queued means not accepted: a non-2xx makes Xero deliver again.
        logger.error("webhook.xero.enqueue_failed", extra={"reason": str(exc), "event_count": len(events)})
        return _empty(503)

    metrics.webhook_events_accepted("xero", len(events))
    logger.info("webhook.xero.accepted", extra=accepted_fields(events, sync_ids))
    return _empty(200)


def accepted_fields(events: list[dict], sync_ids: list[str]) -> dict:
    """The one log line of an accepted delivery: each event's record id, record type and sync id (how one
    record's trip is followed from here) as lists in the same order, and for a delivery of one record
    those as top-level fields.

    One line per delivery rather than per event, and flat lists rather than an object per event: a line
    per event cost about as much CPU as the rest of the answer, and a delivery can carry many events.
    """
    tenants = sorted({event["tenantId"] for event in events})
    record_types = [RECORD_TYPES.get(XERO_CATEGORIES.get(event["eventCategory"].upper()), event["eventCategory"])
                    for event in events]
    fields: dict = {"event_count": len(events), "tenant_count": len(tenants),
                    "xero_ids": [event["resourceId"] for event in events], "record_types": record_types,
                    "sync_ids": sync_ids}
    if len(tenants) == 1:
        fields["tenant_id"] = tenants[0]
    else:
        fields["tenant_ids"] = [event["tenantId"] for event in events]
    if len(events) == 1:
        fields.update(xero_id=events[0]["resourceId"], record_type=record_types[0], sync_id=sync_ids[0])
    return fields
