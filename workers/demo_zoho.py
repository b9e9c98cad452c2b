"""Zoho's side of the demo's scenes (workers/demo_deals.py, workers/demo_new_account.py): a notification
channel enabled on the sandbox org and stored as the connector stores its own, and notifications delivered
twice, as Zoho may deliver one."""

from __future__ import annotations

from datetime import datetime

import requests


def enable_channel(deps, connection_id: int, channel_id: str, token: str, events: list[str], notify_url: str) -> None:
    """Enable ``channel_id`` for ``events`` on the connection's Zoho org and store it with the expiry Zoho gave."""
    connection = deps.store.connections.get(connection_id)
    [answer] = deps.zoho_client(connection).enable_watch([{
        "channel_id": channel_id, "events": events, "notify_url": notify_url, "token": token}])
    deps.store.channels.save(connection_id, channel_id, token=token, events=events,
                             expires_at=datetime.fromisoformat(answer["details"]["events"][0]["channel_expiry"]))


def deliver_twice(zoho, notifications: list[dict], notify_url: str) -> None:
    """Deliver the sandbox's pending notifications, then ``notifications`` (taken from them) a second time."""
    zoho.deliver_notifications()
    for notification in notifications:
        requests.post(notify_url, json=notification, timeout=5).raise_for_status()
