"""Delta-poll cursors: per connection and resource, the newest UpdatedDateUTC already stored.

The cursor only moves forward (the upsert's WHERE compares), so two overlapping polls, or a poll
that stored page 3 before a slower one stored page 2, can never move it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, session_scope
from connector.store.tables import XeroPollCursor


@dataclass(frozen=True)
class PollCursor:
    connection_id: int
    resource: str
    modified_since: datetime | None
    polled_at: datetime | None
    swept_at: datetime | None


class PollCursorStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def get(self, connection_id: int, resource: str) -> PollCursor:
        with session_scope(self._sessions) as session:
            row = session.scalars(select(XeroPollCursor).where(
                XeroPollCursor.connection_id == connection_id, XeroPollCursor.resource == resource)).one_or_none()
            if row is None:
                return PollCursor(connection_id, resource, None, None, None)
            return PollCursor(connection_id, resource, row.modified_since, row.polled_at, row.swept_at)

    def advance(self, connection_id: int, resource: str, modified_since: datetime) -> None:
        """Move the cursor to ``modified_since`` unless it is already there or further."""
        with session_scope(self._sessions) as session:
            statement = dialect_insert(session, XeroPollCursor).values(
                connection_id=connection_id, resource=resource, modified_since=modified_since)
            session.execute(statement.on_conflict_do_update(
                index_elements=[XeroPollCursor.connection_id, XeroPollCursor.resource],
                set_={"modified_since": modified_since},
                where=or_(XeroPollCursor.modified_since.is_(None),
                          XeroPollCursor.modified_since < statement.excluded.modified_since),
            ))

    def mark_polled(self, connection_id: int, resource: str, *, full_sweep: bool = False) -> None:
        now = self._clock.now()
        values = {"polled_at": now, **({"swept_at": now} if full_sweep else {})}
        with session_scope(self._sessions) as session:
            statement = dialect_insert(session, XeroPollCursor).values(
                connection_id=connection_id, resource=resource, **values)
            session.execute(statement.on_conflict_do_update(
                index_elements=[XeroPollCursor.connection_id, XeroPollCursor.resource], set_=values))
