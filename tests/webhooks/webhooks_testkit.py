"""Helpers shared by the receiver tests (a uniquely named module, importable from the tests)."""

from __future__ import annotations

import base64
import hmac
import json

import redis

from connector.secret import Secret
from connector.settings import Settings
from connector.store.vault import Vault
from connector.xero.webhook_body import delivered_events
from tests.conftest import redis_db, redis_url

BROKER_URL = redis_url(redis_db("webhooks"))
WEBHOOK_KEY = "test-signing-key-ZmFrZQ=="


def production_receiver(database_url: str, redis_address: str, *, webhook_key: str = "k"):
    """A test client of the receiver gunicorn serves (webhooks.wsgi.build_receiver) on real services."""
    from webhooks.wsgi import build_receiver
    from workers.deps import configure

    configure(Settings(database_url=database_url, redis_url=redis_address, broker_url=redis_address,
                       vault_keys=Secret(Vault.generate_keyring("k1")), xero_webhook_key=Secret(webhook_key),
                       public_url="https://connector.example.com", embedded_allowed=False))
    return build_receiver().test_client()


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


def queued_events(message: dict) -> list[dict]:
    """The events a worker takes from a queued Xero delivery (each with its sync id)."""
    return delivered_events(*message["args"])
