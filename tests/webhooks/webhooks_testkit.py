"""Helpers shared by the receiver tests (a uniquely named module, importable from the tests)."""

from __future__ import annotations

import base64
import hmac
import json

import redis

from tests.conftest import redis_url

BROKER_URL = redis_url(11)
WEBHOOK_KEY = "test-signing-key-ZmFrZQ=="


class ChannelBook:
    """In-memory stand-in for ChannelStore: channel id -> (token, connection id)."""

    def __init__(self, channels: dict[str, tuple[str, int]]) -> None:
        self.channels = channels

    def verify(self, channel_id: str, token: str) -> int | None:
        known = self.channels.get(channel_id)
        if known is None or not hmac.compare_digest(known[0], token):
            return None
        return known[1]


def queued_messages(client: redis.Redis, queue: str) -> list[dict]:
    """Messages kombu's Redis transport stored in the list named after the queue, oldest first."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # LPUSH on publish: newest is at the head
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs})
    return messages
