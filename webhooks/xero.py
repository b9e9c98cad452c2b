"""POST /webhooks/xero (xero-api.md §4): raw body, signature, envelope, one task, empty 200."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify, request

from connector.pipeline.common import RECORD_TYPES, XERO_CATEGORIES, new_sync_ids
from connector.queues import INGEST_XERO_EVENTS, XERO_QUEUE
from webhooks.app import raw_body, receiver
from webhooks.enqueue import EnqueueFailed
from webhooks.signatures import verify_xero_signature
from webhooks.validation import MAX_ID_LENGTH, may_hold_nul, value_problem

logger = logging.getLogger("webhooks.xero")

xero_blueprint = Blueprint("xero", __name__)

REQUIRED_EVENT_FIELDS = ("resourceId", "eventCategory", "eventType", "tenantId")
ID_FIELDS = ("resourceId", "tenantId")
# What the pipeline needs; anything else Xero adds stays out of the queue.
FORWARDED_EVENT_FIELDS = (
    "resourceId",
    "resourceUrl",
    "eventCategory",
    "eventType",
    "eventDateUtc",
    "tenantId",
    "tenantType",
)


class InvalidEnvelope(ValueError):
    pass


def _empty(status: int) -> Response:
    # Xero wants an empty body and no cookies, for 200 and 401 alike (xero-api.md §4.4).
    return Response(b"", status=status)


@xero_blueprint.post("/webhooks/xero")
def receive_xero_webhook() -> Response:
    state = receiver()
    # The raw bytes, before any JSON parsing: the HMAC covers them exactly (xero-api.md §4.3).
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
        events = parse_xero_events(body)
    except InvalidEnvelope as exc:
        logger.warning("webhook.xero.invalid", extra={"reason": str(exc)})
        return jsonify(error=str(exc)), 400

    if not events:
        # Intent to Receive probe: correctly signed, nothing to do (xero-api.md §4.4).
        logger.info("webhook.xero.intent_to_receive")
        return _empty(200)

    # The correlation id of each record's trip starts here and travels with the event (logs carry it).
    for event, sync_id in zip(events, new_sync_ids(len(events))):
        event["sync_id"] = sync_id
    try:
        state.enqueue(INGEST_XERO_EVENTS, [events], XERO_QUEUE)
    except EnqueueFailed as exc:
        # Not queued means not accepted: a non-2xx makes Xero deliver again (xero-api.md §4.5).
        logger.error("webhook.xero.enqueue_failed", extra={"reason": str(exc), "event_count": len(events)})
        return _empty(503)

    logger.info("webhook.xero.accepted", extra=accepted_fields(events))
    return _empty(200)


def accepted_fields(events: list[dict]) -> dict:
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
                    "sync_ids": [event["sync_id"] for event in events]}
    if len(tenants) == 1:
        fields["tenant_id"] = tenants[0]
    else:
        fields["tenant_ids"] = [event["tenantId"] for event in events]
    if len(events) == 1:
        fields.update(xero_id=events[0]["resourceId"], record_type=record_types[0], sync_id=events[0]["sync_id"])
    return fields


def parse_xero_events(body: bytes) -> list[dict]:
    """The events of a Xero webhook body, trimmed to the forwarded fields; InvalidEnvelope if not one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidEnvelope("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidEnvelope("body must be a JSON object with an 'events' list")
    if "events" not in payload:
        raise InvalidEnvelope("body has no 'events' field")
    raw_events = payload["events"]
    if not isinstance(raw_events, list):
        raise InvalidEnvelope("'events' must be a list")

    # Without the escape no string in the body holds a NUL; then only an overlong id can be wrong.
    nul_possible = may_hold_nul(body)
    events = []
    for index, event in enumerate(raw_events):
        if not isinstance(event, dict):
            raise InvalidEnvelope(f"events[{index}] must be an object")
        missing = [name for name in REQUIRED_EVENT_FIELDS if not isinstance(event.get(name), str) or not event[name]]
        if missing:
            raise InvalidEnvelope(f"events[{index}] is missing or has empty {', '.join(missing)}")
        trimmed = {name: event.get(name) for name in FORWARDED_EVENT_FIELDS}
        if "data" in event:  # CREDITNOTE events carry {Type, Status} (xero-api.md §4.2)
            trimmed["data"] = event["data"]
        if nul_possible or any(len(trimmed[name]) > MAX_ID_LENGTH for name in ID_FIELDS):
            for name, value in trimmed.items():
                problem = value_problem(value, f"events[{index}].{name}", is_id=name in ID_FIELDS)
                if problem:
                    raise InvalidEnvelope(problem)
        events.append(trimmed)
    return events
