"""Parked work: records that wait durably for a person (reconnect) or for a budget reset.

One row per (connection, resource, record); parking the same record again keeps the earliest
``parked_at`` and the latest reason. ``take_due`` removes and returns what may run now, so a
resume that crashes half-way loses nothing that was not re-queued (callers re-park on failure).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, session_scope
from connector.store.tables import ParkedWork

NEEDS_REAUTH = "needs_reauth"
DAILY_BUDGET = "daily_budget"


@dataclass(frozen=True)
class Parked:
    connection_id: int
    resource: str
    record_id: str
    reason: str
    priority: int
    sync_id: str | None
    resume_after: datetime | None
    parked_at: datetime


class ParkedWorkStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def park(self, connection_id: int, resource: str, record_ids: list[str], *, reason: str,
             resume_after: datetime | None = None, priority: int = 0, sync_ids: dict | None = None) -> None:
        if not record_ids:
            return
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            for record_id in dict.fromkeys(record_ids):
                values = {"reason": reason, "resume_after": resume_after, "priority": priority,
                          "sync_id": (sync_ids or {}).get(record_id)}
                statement = dialect_insert(session, ParkedWork).values(
                    connection_id=connection_id, resource=resource, record_id=record_id, parked_at=now, **values
                )
                session.execute(statement.on_conflict_do_update(
                    index_elements=[ParkedWork.connection_id, ParkedWork.resource, ParkedWork.record_id], set_=values
                ))

    def take_due(self, connection_id: int, *, limit: int = 1000,
                 reason: str | None = None) -> dict[str, list[Parked]]:
        """Remove and return the work of one connection whose wait is over, grouped by resource.

        ``reason`` narrows it to one kind of wait (e.g. only DAILY_BUDGET work after a reset).
        """
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            query = select(ParkedWork).where(
                ParkedWork.connection_id == connection_id,
                or_(ParkedWork.resume_after.is_(None), ParkedWork.resume_after <= now))
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            rows = session.scalars(
                query
                .order_by(ParkedWork.priority, ParkedWork.parked_at, ParkedWork.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            taken: dict[str, list[Parked]] = defaultdict(list)
            for row in rows:
                taken[row.resource].append(Parked(
                    connection_id=row.connection_id, resource=row.resource, record_id=row.record_id,
                    reason=row.reason, priority=row.priority, sync_id=row.sync_id,
                    resume_after=row.resume_after, parked_at=row.parked_at,
                ))
            if rows:
                session.execute(delete(ParkedWork).where(ParkedWork.id.in_([r.id for r in rows])))
            return dict(taken)

    def count(self, connection_id: int | None = None, *, reason: str | None = None) -> int:
        with session_scope(self._sessions) as session:
            query = select(func.count()).select_from(ParkedWork)
            if connection_id is not None:
                query = query.where(ParkedWork.connection_id == connection_id)
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            return int(session.scalar(query) or 0)

    def connections_with_due_work(self, *, reason: str | None = None) -> list[int]:
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            query = select(ParkedWork.connection_id).where(
                or_(ParkedWork.resume_after.is_(None), ParkedWork.resume_after <= now))
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            return list(session.scalars(query.distinct()))
