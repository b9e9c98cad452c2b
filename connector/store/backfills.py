"""Durable backfill checkpoints (one per connection and resource); see connector/backfill.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import from_row, session_scope
from connector.store.tables import BackfillCheckpoint

RUNNING = "running"
WAITING = "waiting"  # for its daily call budget; resume_after says until when
DONE = "done"


@dataclass(frozen=True)
class Checkpoint:
    connection_id: int
    resource: str
    since: datetime | None
    anchor: datetime | None
    page: int
    state: str
    records: int
    pages: int
    remaining: int | None
    calls_per_day: int | None
    resume_after: datetime | None
    version: int
    started_at: datetime
    updated_at: datetime

    of = classmethod(from_row)  # from an ORM object or a Core row of the table


class BackfillCheckpointStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def start(self, connection_id: int, resources: list[str], *, since: datetime | None,
              calls_per_day: int | None) -> list[Checkpoint]:
        """Resume the backfill of this connection, or start a fresh one once the last one finished.

        While any resource is unfinished the backfill is resumed: each unfinished checkpoint goes on
        from where it stands and a finished one stays finished (its pages are never listed again); a
        resource without a checkpoint is started. Once every resource is done, the same command starts
        a new backfill of ``resources`` from the beginning. The version of each checkpoint that will
        run moves on: the caller starts a new chain of steps, and a step still queued from an older
        chain (a worker killed mid-way) must find itself superseded."""
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            rows = {row.resource: row for row in session.scalars(select(BackfillCheckpoint).where(
                BackfillCheckpoint.connection_id == connection_id))}
            resuming = any(row.state != DONE for row in rows.values())
            for resource in resources:
                row = rows.get(resource)
                if row is None:
                    row = BackfillCheckpoint(connection_id=connection_id, resource=resource, version=0)
                    session.add(row)
                elif row.state == DONE and resuming:
                    continue
                if row.state in (None, DONE):
                    row.since, row.anchor, row.page, row.records, row.pages = since, since, 1, 0, 0
                    row.remaining, row.started_at = None, now
                row.version = (row.version or 0) + 1
                row.state, row.resume_after, row.calls_per_day, row.updated_at = RUNNING, None, calls_per_day, now
        return [self.get(connection_id, r) for r in resources]

    def get(self, connection_id: int, resource: str) -> Checkpoint | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(select(BackfillCheckpoint).where(
                BackfillCheckpoint.connection_id == connection_id,
                BackfillCheckpoint.resource == resource)).one_or_none()
            return Checkpoint.of(row) if row is not None else None

    def for_connection(self, connection_id: int) -> list[Checkpoint]:
        with session_scope(self._sessions) as session:
            rows = session.scalars(select(BackfillCheckpoint).where(
                BackfillCheckpoint.connection_id == connection_id).order_by(BackfillCheckpoint.id))
            return [Checkpoint.of(row) for row in rows]

    def unfinished(self) -> list[Checkpoint]:
        with session_scope(self._sessions) as session:
            rows = session.scalars(select(BackfillCheckpoint).where(BackfillCheckpoint.state != DONE)
                                   .order_by(BackfillCheckpoint.id))
            return [Checkpoint.of(row) for row in rows]

    def advance(self, checkpoint: Checkpoint, *, anchor: datetime | None, page: int, records: int,
                remaining: int | None, done: bool) -> bool:
        """Record one more stored page; False when another step moved the checkpoint first."""
        return self._compare_and_set(checkpoint, anchor=anchor, page=page, records=checkpoint.records + records,
                                     pages=checkpoint.pages + 1, remaining=remaining,
                                     state=DONE if done else RUNNING, resume_after=None)

    def wait_until(self, checkpoint: Checkpoint, resume_after: datetime) -> bool:
        return self._compare_and_set(checkpoint, state=WAITING, resume_after=resume_after)

    def claim(self, checkpoint: Checkpoint) -> int | None:
        """Take the checkpoint over for a new chain of steps: its new version, or None when another
        step or sender moved it first (then that one carries on and the caller sends nothing)."""
        return checkpoint.version + 1 if self._compare_and_set(checkpoint) else None

    def _compare_and_set(self, checkpoint: Checkpoint, **values) -> bool:
        with session_scope(self._sessions) as session:
            result = session.execute(
                update(BackfillCheckpoint)
                .where(BackfillCheckpoint.connection_id == checkpoint.connection_id,
                       BackfillCheckpoint.resource == checkpoint.resource,
                       BackfillCheckpoint.version == checkpoint.version)
                .values(version=checkpoint.version + 1, updated_at=self._clock.now(), **values))
            return result.rowcount == 1
