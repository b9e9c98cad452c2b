"""What the receiver's blueprints share: the receiver's state on the Flask app, and the raw body.

Its own module so that webhooks/app.py (which builds the app from the blueprints) and the blueprints
(webhooks/xero.py, webhooks/zoho.py, which read this) import it without importing each other.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from connector.secret import Secret
from webhooks.enqueue import Enqueue

logger = logging.getLogger("webhooks")

EXTENSION = "ml_connector"


class ZohoChannelVerifier(Protocol):
    def verify(self, channel_id: str, token: str) -> int | None:
        """The connection id owning ``channel_id`` if ``token`` matches, else None."""


@dataclass
class Receiver:
    """What the blueprints need, kept on the app so two apps never share state."""

    webhook_key: Secret
    enqueue: Enqueue
    zoho_channels: ZohoChannelVerifier
    max_body_bytes: int
    # name -> a call that raises when that part is unreachable (e.g. "redis": redis.ping)
    liveness: Mapping[str, Callable[[], object]]
    # the operator's view (connections, states, parked work); see /status
    status: Callable[[], dict] | None
    counters: dict
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_rejected_zoho_callback(self) -> None:
        with self.lock:
            self.counters["rejected_zoho_callbacks"] += 1


def receiver() -> Receiver:
    return current_app.extensions[f"{EXTENSION}.receiver"]


def raw_body() -> bytes:
    """The request body exactly as sent (cached for later reads); 413 if over the limit."""
    limit = receiver().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    body = request.get_data(cache=True)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body
