"""The audit trail: every stage of every record's trip, append-only, with secrets blanked out."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from connector import logs
from connector.clock import SYSTEM_CLOCK, Clock
from connector.secret import Secret
from connector.store.db import insert_rows, session_scope
from connector.store.tables import AuditEvent

RECEIVED = "received"
FETCHED = "fetched"
MAPPED = "mapped"
WRITTEN = "written"
SKIPPED = "skipped"
FAILED = "failed"
RETRYING = "retrying"
PARKED = "parked"
STAGES = (RECEIVED, FETCHED, MAPPED, WRITTEN, SKIPPED, FAILED, RETRYING, PARKED)

XERO_TO_ZOHO = "xero_to_zoho"
ZOHO_TO_XERO = "zoho_to_xero"
DIRECTIONS = (XERO_TO_ZOHO, ZOHO_TO_XERO)

REDACTED = "***"
_SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "authorization", "refresh", "api_key", "apikey")
# "code" alone is an OAuth authorization code; CurrencyCode, TaxCode and friends are data we want.
_SECRET_KEYS = {"code", "auth_code", "authcode", "grant_code"}
# An Authorization header value: scheme plus one opaque word ("Bearer Creek Farm Ltd" is a name).
log = logging.getLogger("connector.audit")
# Stages worth a warning in the logs; the rest are the ordinary steps of a trip.
_WARN_STAGES = {"failed", "parked", "retrying"}

_CREDENTIAL_VALUE = re.compile(r"^\s*(bearer|basic|zoho-oauthtoken)\s+\S+\s*$", re.IGNORECASE)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and credential-looking strings replaced by "***"."""
    if isinstance(value, dict):
        return {key: REDACTED if _looks_secret(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact(item) for item in value]
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str) and _CREDENTIAL_VALUE.match(value):
        return REDACTED
    return value


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS)


_STAGE_MESSAGES = {stage: f"sync.{stage}" for stage in STAGES}


def _log_stage(connection_id, record_type, record_id, stage, direction, sync_id, task_id, detail) -> None:
    # Every step of a record's trip is also a log line, so one sync_id finds the whole trip in the logs.
    logs.log_fields(log, logging.WARNING if stage in _WARN_STAGES else logging.INFO,
                    _STAGE_MESSAGES.get(stage) or f"sync.{stage}", {
                        "connection_id": connection_id, "record_type": record_type,
                        "xero_id" if direction == XERO_TO_ZOHO else "zoho_id": record_id, "sync_id": sync_id,
                        "task_id": task_id, "stage": stage, "direction": direction, "detail": detail})


def error_class(detail: dict | None) -> str:
    """A failure's class, for filtering and counting: Zoho's code, else our error's name."""
    detail = detail or {}
    return str(detail.get("error_code") or detail.get("error") or "Unclassified")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    connection_id: int | None
    sync_id: str
    direction: str
    record_type: str
    record_id: str
    stage: str
    detail: dict[str, Any] | None
    task_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: AuditEvent) -> "AuditEntry":
        return cls(
            id=row.id,
            connection_id=row.connection_id,
            sync_id=row.sync_id,
            direction=row.direction,
            record_type=row.record_type,
            record_id=row.record_id,
            stage=row.stage,
            detail=row.detail,
            task_id=row.task_id,
            created_at=row.created_at,
        )


class AuditLog:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def record(self, **fields: Any) -> None:
        """One audit row (the keywords of ``row``), written in a transaction of its own."""
        with session_scope(self._sessions) as session:
            session.add(AuditEvent(**self.row(**fields)))

    def row(
        self,
        *,
        record_type: str,
        record_id: str,
        stage: str,
        connection_id: int | None = None,
        sync_id: str | None = None,
        direction: str = XERO_TO_ZOHO,
        detail: dict | None = None,
        task_id: str | None = None,
        logged: bool = True,
    ) -> dict[str, Any]:
        """One audit row as it will be stored, checked and redacted, stamped with the time now; also a
        log line unless ``logged`` is False (the caller logs such rows together)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        # The task running this (bound by workers/log_context.py) when the caller did not say.
        context = logs.current()
        task_id = task_id or context.get("task_id")
        # A stage recorded without its trip's id belongs to the trip the running task works on, if one.
        sync_id = sync_id or context.get("sync_id") or uuid.uuid4().hex
        detail = redact(detail) if detail is not None else None
        if logged:
            _log_stage(connection_id, record_type, str(record_id), stage, direction, sync_id, task_id, detail)
        return {
            "connection_id": connection_id,
            "sync_id": sync_id,
            "direction": direction,
            "record_type": record_type,
            "record_id": str(record_id),
            "stage": stage,
            "detail": detail,
            "task_id": task_id,
            "created_at": self._clock.now(),
        }

    def record_many(self, entries: list[dict]) -> None:
        """Several ``record`` calls (keyword dicts) in one statement: a backfill page's stages."""
        self.write_rows([self.row(**entry) for entry in entries])

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows made by ``row`` (their times are when they happened), in one transaction and one
        multi-row INSERT, in the order given."""
        if not rows:
            return
        with session_scope(self._sessions) as session:
            columns = list(rows[0])
            insert_rows(session, AuditEvent.__table__, columns, rows)

    def batch(self) -> "AuditBatch":
        return AuditBatch(self)

    def prune(self, older_than: datetime, *, batch_size: int = 5000) -> int:
        """Delete rows created before ``older_than``, oldest first, one short transaction per
        ``batch_size`` rows (a long DELETE would hold its locks and bloat one transaction);
        returns how many went."""
        deleted = 0
        while True:
            oldest = (select(AuditEvent.id).where(AuditEvent.created_at < older_than)
                      .order_by(AuditEvent.created_at).limit(batch_size))
            with session_scope(self._sessions) as session:
                ids = list(session.scalars(oldest))
                if ids:
                    session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch_size:
                return deleted

    def trail(self, connection_id: int | None, record_type: str, record_id: str) -> list[AuditEntry]:
        """Every event of one record, oldest first."""
        statement = self._of_record(connection_id, record_type, record_id).order_by(AuditEvent.id)
        with session_scope(self._sessions) as session:
            return [AuditEntry.of(row) for row in session.scalars(statement)]

    def latest_stage(self, connection_id: int | None, record_type: str, record_id: str) -> str | None:
        statement = (
            self._of_record(connection_id, record_type, record_id)
            .with_only_columns(AuditEvent.stage)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        with session_scope(self._sessions) as session:
            return session.scalar(statement)

    def failures(self, connection_id: int | None = None, limit: int = 100, *, since: datetime | None = None,
                 record_type: str | None = None, unattached: bool = False) -> list[AuditEntry]:
        """The latest event of each record whose latest stage is FAILED, newest first.

        ``since``: only failures at or after it; ``unattached``: only records that reached no connection
        (webhooks of a Xero tenant that was not connected yet), whatever ``connection_id`` says.
        """
        latest = select(func.max(AuditEvent.id).label("id")).group_by(
            AuditEvent.connection_id, AuditEvent.record_type, AuditEvent.record_id
        )
        if unattached:
            latest = latest.where(AuditEvent.connection_id.is_(None))
        elif connection_id is not None:
            latest = latest.where(AuditEvent.connection_id == connection_id)
        if record_type is not None:
            latest = latest.where(AuditEvent.record_type == record_type)
        statement = select(AuditEvent).where(AuditEvent.id.in_(latest.scalar_subquery()), AuditEvent.stage == FAILED)
        if since is not None:
            statement = statement.where(AuditEvent.created_at >= since)
        statement = statement.order_by(AuditEvent.id.desc()).limit(limit)
        with session_scope(self._sessions) as session:
            return [AuditEntry.of(row) for row in session.scalars(statement)]

    def attempts(self, entries: list[AuditEntry]) -> dict[tuple[int | None, str, str], int]:
        """How many times each record's sync failed or was retried, all trips counted."""
        counts: dict[tuple[int | None, str, str], int] = {}
        ids = sorted({e.record_id for e in entries})
        for start in range(0, len(ids), 500):
            statement = (
                select(AuditEvent.connection_id, AuditEvent.record_type, AuditEvent.record_id, func.count())
                .where(AuditEvent.record_id.in_(ids[start:start + 500]), AuditEvent.stage.in_((FAILED, RETRYING)))
                .group_by(AuditEvent.connection_id, AuditEvent.record_type, AuditEvent.record_id)
            )
            with session_scope(self._sessions) as session:
                for connection_id, record_type, record_id, count in session.execute(statement):
                    counts[(connection_id, record_type, record_id)] = int(count)
        return counts

    def last_stage_times(self, connection_id: int, stage: str) -> dict[str, datetime]:
        """Per record type, when a record of this connection last reached ``stage``."""
        statement = (
            select(AuditEvent.record_type, func.max(AuditEvent.created_at))
            .where(AuditEvent.connection_id == connection_id, AuditEvent.stage == stage)
            .group_by(AuditEvent.record_type)
        )
        with session_scope(self._sessions) as session:
            return {record_type: when for record_type, when in session.execute(statement)}

    def failure_counts(self, connection_id: int, since: datetime) -> dict[str, int]:
        """Failures of one connection since ``since``, counted by error class (see ``error_class``)."""
        statement = select(AuditEvent.detail).where(
            AuditEvent.connection_id == connection_id, AuditEvent.stage == FAILED, AuditEvent.created_at >= since)
        counts: dict[str, int] = {}
        with session_scope(self._sessions) as session:
            for detail in session.scalars(statement):
                name = error_class(detail)
                counts[name] = counts.get(name, 0) + 1
        return counts

    def count(self, stage: str | None = None) -> int:
        statement = select(func.count()).select_from(AuditEvent)
        if stage is not None:
            statement = statement.where(AuditEvent.stage == stage)
        with session_scope(self._sessions) as session:
            return session.scalar(statement) or 0

    @staticmethod
    def _of_record(connection_id: int | None, record_type: str, record_id: str):
        same_connection = (
            AuditEvent.connection_id.is_(None) if connection_id is None else AuditEvent.connection_id == connection_id
        )
        return select(AuditEvent).where(
            same_connection, AuditEvent.record_type == record_type, AuditEvent.record_id == str(record_id)
        )


class AuditBatch:
    """The audit rows of one unit of work (a batch of records), written together by ``flush``.

    ``record`` takes the same arguments as ``AuditLog.record`` and stamps each row with the time
    it happened; ``flush`` writes everything held in one transaction instead of one per row.
    Reads go straight to the log.
    """

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self._rows: list[dict[str, Any]] = []

    def record(self, **fields: Any) -> None:
        self._rows.append(self._log.row(**fields))

    def flush(self) -> int:
        rows, self._rows = self._rows, []
        self._log.write_rows(rows)
        return len(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __getattr__(self, name: str):
        return getattr(self._log, name)
