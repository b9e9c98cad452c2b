"""Parked work: records that wait durably for a person (reconnect), a limit's reset or an outage's end.

One row per (connection, resource, record); parking the same record again keeps the earliest
``parked_at`` and the latest reason. ``hand_over`` gives what may run now to a callback that
queues it and deletes the rows only once that callback returned, so a crash or a broker failure
between the two loses nothing: the work is simply handed over again.

``stage`` says what re-drives a record: FETCH (fetch it from Xero again; Xero ids), PUSH (push the
stored snapshot to Zoho; Xero ids) or NOTIFY (a Zoho change to take in; resource ``zoho:<Module>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, session_scope
from connector.store.tables import ParkedWork

NEEDS_REAUTH = "needs_reauth"
DAILY_BUDGET = "daily_budget"
RATE_LIMITED = "rate_limited"  # a limit with a reset longer than a broker countdown may wait (e.g. Zoho credits)
OUTAGE = "outage"  # the API or a service kept failing past the short retries: waits longer and longer
REASONS = (NEEDS_REAUTH, DAILY_BUDGET, RATE_LIMITED, OUTAGE)
ZOHO_NOT_CONNECTED = "zoho_not_connected"  # Zoho-bound work of a connection whose Zoho side is not connected yet
WAITING_FOR_ACCOUNT = "waiting_for_account"  # a won deal whose account is not a Xero contact yet (to_xero/deals.py)

FETCH = "fetch"
PUSH = "push"
NOTIFY = "notify"
ZOHO_RESOURCE_PREFIX = "zoho:"  # resource of NOTIFY work: zoho:<Module>


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
    stage: str = FETCH
    attempts: int = 0


class ParkedWorkStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def park(self, connection_id: int, resource: str, record_ids: list[str], *, reason: str,
             resume_after: datetime | None = None, priority: int = 0, sync_ids: dict | None = None,
             stage: str = FETCH, attempts: int = 0) -> None:
        if not record_ids:
            return
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            for record_id in dict.fromkeys(record_ids):
                values = {"reason": reason, "resume_after": resume_after, "priority": priority,
                          "sync_id": (sync_ids or {}).get(record_id), "attempts": attempts}
                statement = dialect_insert(session, ParkedWork).values(
                    connection_id=connection_id, resource=resource, record_id=record_id, parked_at=now,
                    stage=stage, **values,
                )
                # A fetch covers a push (it pushes what it fetched): a record parked for both is fetched.
                kept_stage = case((ParkedWork.stage == FETCH, FETCH), else_=statement.excluded.stage)
                session.execute(statement.on_conflict_do_update(
                    index_elements=[ParkedWork.connection_id, ParkedWork.resource, ParkedWork.record_id],
                    set_={**values, "stage": kept_stage},
                ))

    def hand_over(self, connection_id: int, deliver: Callable[[list[Parked]], None], *, limit: int = 500,
                  reason: str | None = None, skip_reason: str | None = None) -> int:
        """Give up to ``limit`` records of one connection whose wait is over to ``deliver`` (which queues
        them), highest priority and oldest first; returns how many it handed over.

        The rows are deleted in the same transaction, after ``deliver`` returned: if it raises (the broker
        refused) or the process dies meanwhile, they stay parked and are handed over next time; at worst a
        record is queued twice, which idempotent tasks absorb. The rows stay locked meanwhile (SKIP LOCKED
        on PostgreSQL), so two resumers never hand over the same record. ``reason`` narrows it to one
        kind of wait; ``skip_reason`` leaves one kind of wait out.
        """
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            query = select(ParkedWork).where(
                ParkedWork.connection_id == connection_id,
                or_(ParkedWork.resume_after.is_(None), ParkedWork.resume_after <= now))
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            if skip_reason is not None:
                query = query.where(ParkedWork.reason != skip_reason)
            rows = session.scalars(
                query
                .order_by(ParkedWork.priority, ParkedWork.parked_at, ParkedWork.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            deliver([Parked(
                connection_id=row.connection_id, resource=row.resource, record_id=row.record_id,
                reason=row.reason, priority=row.priority, sync_id=row.sync_id, resume_after=row.resume_after,
                parked_at=row.parked_at, stage=row.stage, attempts=row.attempts,
            ) for row in rows])
            session.execute(delete(ParkedWork).where(ParkedWork.id.in_([r.id for r in rows])))
            return len(rows)

    def count(self, connection_id: int | None = None, *, reason: str | None = None) -> int:
        with session_scope(self._sessions) as session:
            query = select(func.count()).select_from(ParkedWork)
            if connection_id is not None:
                query = query.where(ParkedWork.connection_id == connection_id)
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            return int(session.scalar(query) or 0)

    def counts_by_reason(self, connection_id: int) -> dict[str, int]:
        """Parked records of one connection per reason, every reason of REASONS listed (0 when none)."""
        with session_scope(self._sessions) as session:
            rows = session.execute(select(ParkedWork.reason, func.count()).where(
                ParkedWork.connection_id == connection_id).group_by(ParkedWork.reason)).all()
        counts = dict.fromkeys(REASONS, 0)
        counts.update({reason: int(n) for reason, n in rows})
        return counts

    def parked_before(self, cutoff: datetime) -> dict[int, tuple[dict[str, int], datetime]]:
        """Per connection, the records parked before ``cutoff`` by reason, and when the oldest was parked
        (parking a record again keeps its first ``parked_at``, so a record that keeps failing ages too)."""
        with session_scope(self._sessions) as session:
            rows = session.execute(
                select(ParkedWork.connection_id, ParkedWork.reason, func.count(), func.min(ParkedWork.parked_at))
                .where(ParkedWork.parked_at < cutoff)
                .group_by(ParkedWork.connection_id, ParkedWork.reason)).all()
        aged: dict[int, tuple[dict[str, int], datetime]] = {}
        for connection_id, reason, count, oldest in rows:
            reasons, first = aged.get(connection_id, ({}, oldest))
            reasons[reason] = int(count)
            aged[connection_id] = (reasons, min(first, oldest))
        return aged

    def connections_with_due_work(self, *, reason: str | None = None) -> list[int]:
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            query = select(ParkedWork.connection_id).where(
                or_(ParkedWork.resume_after.is_(None), ParkedWork.resume_after <= now))
            if reason is not None:
                query = query.where(ParkedWork.reason == reason)
            return list(session.scalars(query.distinct()))
