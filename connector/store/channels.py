"""Zoho CRM notification channels. Zoho echoes our token with each notification; we keep its hash."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, session_scope, single_statement
from connector.store.tables import ZohoChannel

_channels = ZohoChannel.__table__
_FOR_CONNECTION = select(_channels).where(_channels.c.connection_id == bindparam("connection_id")).order_by(
    _channels.c.id)
_ALL = select(_channels).order_by(_channels.c.id)

# Compared against when the channel is unknown, so a miss costs about as long as a hit.
_NO_MATCH_HASH = hashlib.sha256(b"no such channel").hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChannelInfo:
    connection_id: int
    channel_id: str
    events: list[str]
    expires_at: datetime
    created_at: datetime
    renewed_at: datetime | None

    @classmethod
    def of(cls, row) -> "ChannelInfo":  # a ZohoChannel or a Core row of its table
        return cls(
            connection_id=row.connection_id,
            channel_id=row.channel_id,
            events=list(row.events),
            expires_at=row.expires_at,
            created_at=row.created_at,
            renewed_at=row.renewed_at,
        )


class ChannelStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def save(self, connection_id: int, channel_id: str, *, token: str, events: list[str], expires_at: datetime) -> None:
        """Create or replace a channel (re-subscribing with the same id replaces token and events)."""
        values = {
            "connection_id": connection_id,
            "token_hash": _token_hash(token),
            "events": list(events),
            "expires_at": expires_at,
        }
        with session_scope(self._sessions) as session:
            statement = dialect_insert(session, ZohoChannel).values(
                channel_id=str(channel_id), created_at=self._clock.now(), **values
            )
            session.execute(
                statement.on_conflict_do_update(index_elements=[ZohoChannel.channel_id], set_=values)
            )

    def verify(self, channel_id: str, token: str) -> int | None:
        """The channel's connection id when ``token`` is the one we registered; None otherwise."""
        with session_scope(self._sessions) as session:
            row = session.execute(
                select(ZohoChannel.connection_id, ZohoChannel.token_hash).where(
                    ZohoChannel.channel_id == str(channel_id)
                )
            ).one_or_none()
        expected = row.token_hash if row else _NO_MATCH_HASH
        matches = hmac.compare_digest(_token_hash(token or ""), expected)
        return row.connection_id if row and matches else None

    def get(self, channel_id: str) -> ChannelInfo | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(select(ZohoChannel).where(ZohoChannel.channel_id == str(channel_id))).one_or_none()
            return ChannelInfo.of(row) if row else None

    def for_connection(self, connection_id: int) -> list[ChannelInfo]:
        with single_statement(self._sessions) as connection:
            return [ChannelInfo.of(row) for row in connection.execute(_FOR_CONNECTION, {"connection_id": connection_id})]

    def all(self) -> list[ChannelInfo]:
        with single_statement(self._sessions) as connection:
            return [ChannelInfo.of(row) for row in connection.execute(_ALL)]

    def expiring_before(self, when: datetime) -> list[ChannelInfo]:
        """Channels that expire before ``when``: the renewal job's work list."""
        statement = select(ZohoChannel).where(ZohoChannel.expires_at < when).order_by(ZohoChannel.expires_at)
        with session_scope(self._sessions) as session:
            return [ChannelInfo.of(row) for row in session.scalars(statement)]

    def renewed(self, channel_id: str, expires_at: datetime) -> None:
        with session_scope(self._sessions) as session:
            row = session.scalars(select(ZohoChannel).where(ZohoChannel.channel_id == str(channel_id))).one_or_none()
            if row is None:
                raise LookupError(f"no Zoho channel {channel_id!r}")
            row.expires_at = expires_at
            row.renewed_at = self._clock.now()
