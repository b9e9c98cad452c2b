"""The body of a Xero webhook, read the same way at the door and in the worker.

Xero's page: https://developer.xero.com/documentation/webhooks/overview

The receiver checks a signed body with ``read_events`` (a clear 400 for a bad one) and queues the body
as received with one sync id per event; the worker turns that back into the pipeline's events with
``delivered_events``. Queuing the body rather than re-serialised events keeps the receiver's answer
cheap: the body is already text, while encoding its events again cost more than parsing them.
Pure: bytes and dicts in, dicts out.
"""

from __future__ import annotations

import json
from typing import Sequence

from connector.validation import MAX_ID_LENGTH, may_hold_nul, value_problem

REQUIRED_EVENT_FIELDS = ("resourceId", "eventCategory", "eventType", "tenantId")
ID_FIELDS = ("resourceId", "tenantId")
# What the pipeline needs; anything else Xero adds never reaches it.
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


def body_text(body: bytes) -> str:
    """The body as text. Xero sends UTF-8 (https://developer.xero.com/documentation/webhooks/overview);
    json.loads would also guess UTF-16 or 32 from bytes, but the text is what is queued."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEnvelope("body is not UTF-8") from None


def read_events(body: str) -> list[dict]:
    """The events of a Xero webhook body, each checked (InvalidEnvelope says what is wrong), as sent.

    Checks only what is forwarded (``forwarded``): a field the pipeline never sees cannot hurt it.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidEnvelope("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidEnvelope("body must be a JSON object with an 'events' list")
    if "events" not in payload:
        raise InvalidEnvelope("body has no 'events' field")
    events = payload["events"]
    if not isinstance(events, list):
        raise InvalidEnvelope("'events' must be a list")

    # Without the escape no string in the body holds a NUL; then only an overlong id can be wrong.
    nul_possible = may_hold_nul(body)
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise InvalidEnvelope(f"events[{index}] must be an object")
        missing = [name for name in REQUIRED_EVENT_FIELDS if not isinstance(event.get(name), str) or not event[name]]
        if missing:
            raise InvalidEnvelope(f"events[{index}] is missing or has empty {', '.join(missing)}")
        if nul_possible or any(len(event[name]) > MAX_ID_LENGTH for name in ID_FIELDS):
            for name, value in forwarded(event).items():
                problem = value_problem(value, f"events[{index}].{name}", is_id=name in ID_FIELDS)
                if problem:
                    raise InvalidEnvelope(problem)
    return events


def forwarded(event: dict) -> dict:
    """What the pipeline takes of one event."""
    trimmed = {name: event.get(name) for name in FORWARDED_EVENT_FIELDS}
    if "data" in event:  # CREDITNOTE events carry {Type, Status} (Xero's page above)
        trimmed["data"] = event["data"]
    return trimmed


def delivered_events(events: list[dict] | str, sync_ids: Sequence[str] | None = None) -> list[dict]:
    """The pipeline's events of a queued delivery: the body as the receiver queued it with one sync id
    per event, or (queued before the body was) the events themselves, each with its ``sync_id``."""
    if not isinstance(events, str):
        return events
    read = read_events(events)
    if sync_ids is None or len(sync_ids) != len(read):
        raise InvalidEnvelope(f"{len(read)} events came with {0 if sync_ids is None else len(sync_ids)} sync ids")
    return [{**forwarded(event), "sync_id": sync_id} for event, sync_id in zip(read, sync_ids)]


def delivery_sequences(body: str) -> tuple[int, int] | None:
    """A delivery's (firstEventSequence, lastEventSequence), or None when absent or not numbers."""
    try:
        payload = json.loads(body)
        return int(payload["firstEventSequence"]), int(payload["lastEventSequence"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
