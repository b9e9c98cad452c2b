"""Zoho channel checks without a database round trip per notification.

A channel's token is checked against the database (connector.store.channels) the first time it is
seen; a match is remembered in this process for a short while, so a busy channel costs one query
per ``ttl_seconds`` instead of one per notification. Only matches are remembered: an unknown
channel or a wrong token always goes to the database, so a channel registered a moment ago is
accepted at once and guessing cannot fill the memory. What is remembered is derived from the
database and may be lost at any time; a token replaced by a re-subscription stays accepted here for
at most ``ttl_seconds`` (the worker still checks that the connection is active before any work).
"""

from __future__ import annotations

import hashlib
import threading

from connector.clock import SYSTEM_CLOCK, Clock

DEFAULT_TTL_SECONDS = 30.0
# Far more channels than one receiver serves (one or two per connection); past it, start afresh.
MAX_REMEMBERED = 10_000


class RememberedChannels:
    """A ZohoChannelVerifier that remembers recent matches of ``channels`` (which does the checking)."""

    def __init__(self, channels, *, ttl_seconds: float = DEFAULT_TTL_SECONDS, clock: Clock | None = None) -> None:
        self._channels = channels
        self._ttl = ttl_seconds
        self._clock = clock or SYSTEM_CLOCK
        # (channel id, SHA-256 of the token) -> (connection id, remembered until). Keyed by the
        # token's digest, so no token is kept and equal keys mean equal tokens.
        self._matches: dict[tuple[str, bytes], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def verify(self, channel_id: str, token: str) -> int | None:
        key = (str(channel_id), hashlib.sha256((token or "").encode("utf-8")).digest())
        now = self._clock.monotonic()
        remembered = self._matches.get(key)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        connection_id = self._channels.verify(channel_id, token)
        with self._lock:
            if connection_id is None:
                self._matches.pop(key, None)
                return None
            if len(self._matches) >= MAX_REMEMBERED:
                self._matches.clear()
            self._matches[key] = (connection_id, now + self._ttl)
        return connection_id
