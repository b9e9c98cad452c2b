"""The audit trail: every stage of every record's trip, append-only (a run of retries is one row with a
count), with secrets blanked out."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, literal_column, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from connector import logs, metrics
from connector.clock import SYSTEM_CLOCK, Clock
from connector.redaction import redact_document
from connector.store.db import from_row, insert_rows, session_scope
from connector.store.tables import AuditEvent, Connection

RECEIVED = "received"
FETCHED = "fetched"
MAPPED = "mapped"
WRITTEN = "written"
SKIPPED = "skipped"
FAILED = "failed"
RETRYING = "retrying"
PARKED = "parked"
# An operator set a failure aside (with a reason in the detail): it leaves the failures list, and the record's
# trail keeps why. A later failure of the record is listed again.
DISMISSED = "dismissed"
STAGES = (RECEIVED, FETCHED, MAPPED, WRITTEN, SKIPPED, FAILED, RETRYING, PARKED, DISMISSED)

XERO_TO_ZOHO = "xero_to_zoho"
ZOHO_TO_XERO = "zoho_to_xero"
DIRECTIONS = (XERO_TO_ZOHO, ZOHO_TO_XERO)

log = logging.getLogger("connector.audit")
# Stages worth a warning in the logs; the rest are the ordinary steps of a trip.
_WARN_STAGES = {"failed", "parked", "retrying"}

_STAGE_MESSAGES = {stage: f"sync.{stage}" for stage in STAGES}


def _log_stage(connection_id, record_type, record_id, stage, direction, sync_id, task_id, detail) -> None:
    # Every step of a record's trip is also a log line, so one sync_id finds the whole trip in the logs.
    logs.log_fields(log, logging.WARNING if stage in _WARN_STAGES else logging.INFO,
                    _STAGE_MESSAGES.get(stage) or f"sync.{stage}", {
                        "connection_id": connection_id, "record_type": record_type,
                        "xero_id" if direction == XERO_TO_ZOHO else "zoho_id": record_id, "sync_id": sync_id,
                        "task_id": task_id, "stage": stage, "direction": direction, "detail": detail})


def _log_rows(rows: list[dict[str, Any]]) -> None:
    """The log lines of a batch's rows: the records that reached an ordinary stage together (same connection,
    record type, direction and task) share one line naming each record's id, sync id and detail in lists,
    in the same order (``xero_ids``/``zoho_ids``, ``sync_ids``, ``details``); a stage worth a warning
    (failed, retrying, parked) and a stage reached by one record alone keep the line of one row, with the
    single fields. A worker logged a line per record and stage (a tenth of its CPU); now about one a stage
    per batch, and searching the logs for a sync_id still finds every stage of its trip."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for n, row in enumerate(rows):
        stage = row["stage"]
        key = ((n,) if stage in _WARN_STAGES else
               (stage, row["connection_id"], row["record_type"], row["direction"], row["task_id"]))
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            _log_stage(first["connection_id"], first["record_type"], first["record_id"], first["stage"],
                       first["direction"], first["sync_id"], first["task_id"], first["detail"])
            continue
        fields = {"connection_id": first["connection_id"], "record_type": first["record_type"],
                  "task_id": first["task_id"], "stage": first["stage"], "direction": first["direction"],
                  "records": len(group),
                  "xero_ids" if first["direction"] == XERO_TO_ZOHO else "zoho_ids": [r["record_id"] for r in group],
                  "sync_ids": [r["sync_id"] for r in group]}
        details = [r["detail"] for r in group]
        if any(detail is not None for detail in details):
            fields["details"] = details
        logs.log_fields(log, logging.INFO, _STAGE_MESSAGES[first["stage"]], fields)


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
    times: int = 1  # reached this stage so many times in a row (a run of retries), the last at last_at
    last_at: datetime | None = None

    of = classmethod(from_row)  # from an ORM object or a Core row of the table


class AuditLog:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def record(self, **fields: Any) -> None:
        """One audit row (the keywords of ``row``), written in a transaction of its own."""
        self.write_rows([self.row(**fields)])

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
    ) -> dict[str, Any]:
        """One audit row as it will be stored, checked and redacted, stamped with the time now; also its
        log line (``unlogged_row`` leaves that to the caller, who logs a batch's rows together)."""
        made = self.unlogged_row(record_type=record_type, record_id=record_id, stage=stage,
                                 connection_id=connection_id, sync_id=sync_id, direction=direction, detail=detail,
                                 task_id=task_id)
        _log_rows([made])
        return made

    def unlogged_row(self, *, record_type: str, record_id: str, stage: str, connection_id: int | None = None,
                     sync_id: str | None = None, direction: str = XERO_TO_ZOHO, detail: dict | None = None,
                     task_id: str | None = None) -> dict[str, Any]:
        """``row`` without its log line (``_log_rows`` writes the lines of a batch)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        # The task running this (bound by workers/log_context.py) when the caller did not say.
        context = logs.current()
        task_id = task_id or context.get("task_id")
        # A stage recorded without its trip's id belongs to the trip the running task works on, if one.
        sync_id = sync_id or context.get("sync_id") or uuid.uuid4().hex
        detail = redact_document(detail) if detail is not None else None
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
            "times": 1,
            "last_at": None,
        }

    def record_many(self, entries: list[dict]) -> None:
        """Several ``record`` calls (keyword dicts) in one statement: a backfill page's stages (their log
        lines a line per stage, see ``_log_rows``)."""
        rows = [self.unlogged_row(**entry) for entry in entries]
        _log_rows(rows)
        self.write_rows(rows)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows made by ``row`` (their times are when they happened), in one transaction, in the order given.

        A retry of a record whose latest row is already "retrying" adds to that row's count instead of
        adding a row (one UPDATE for the batch); the rest are one multi-row INSERT.
        """
        rows, continuing = _fold_repeats(rows)
        if not rows:
            return
        stored = rows
        with session_scope(self._sessions) as session:
            if continuing:
                bumped = _bump_retrying(session, [rows[i] for i in continuing])
                kept = set(range(len(rows))) - {i for i in continuing if _record_key(rows[i]) in bumped}
                rows = [row for i, row in enumerate(rows) if i in kept]
            if rows:
                insert_rows(session, AuditEvent.__table__, list(rows[0]), rows)
        # The one place records' outcomes are counted: where the trail stores them, once stored.
        metrics.record_outcomes(stored)

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
                 record_type: str | None = None, error: str | None = None) -> list[AuditEntry]:
        """The records still failing, newest first: the latest failure of each (see ``_still_failing``).

        With ``connection_id``, that connection's, including the webhooks of its tenant that failed before
        it was connected; without, everyone's. ``since``: failed at or after it; ``error``: of this error
        class (``error_class``, any case). Every filter applies before ``limit``.
        """
        # Newest first by id + 0, not id: ordered by the key itself, a planner (SQLite's always: it keeps no
        # statistics) walks the whole trail backwards for failed rows instead of reading the few of them.
        statement = (select(AuditEvent).where(*_still_failing(connection_id, since, record_type, error))
                     .order_by((AuditEvent.id + 0).desc()).limit(limit))
        with session_scope(self._sessions) as session:
            return [AuditEntry.of(row) for row in session.scalars(statement)]

    def attempts(self, entries: list[AuditEntry]) -> dict[tuple[int | None, str, str], int]:
        """How many times each record's sync failed or was retried, all trips counted: one statement
        per (connection, record type) among ``entries``, each served by the record index."""
        groups: dict[tuple[int | None, str], set[str]] = {}
        for e in entries:
            groups.setdefault((e.connection_id, e.record_type), set()).add(e.record_id)
        counts: dict[tuple[int | None, str, str], int] = {}
        for (connection_id, record_type), ids in groups.items():
            statement = (
                self._of_record(connection_id, record_type, None)
                .with_only_columns(AuditEvent.record_id, func.sum(AuditEvent.times))
                .where(AuditEvent.record_id.in_(sorted(ids)), AuditEvent.stage.in_((FAILED, RETRYING)))
                .group_by(AuditEvent.record_id)
            )
            with session_scope(self._sessions) as session:
                for record_id, count in session.execute(statement):
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
        """The records of one connection still failing that failed since ``since``, counted by error
        class: what ``failures(connection_id, since=since)`` lists."""
        error = _error_class_of_row()
        statement = (select(error, func.count()).where(*_still_failing(connection_id, since, None, None))
                     .group_by(error))
        with session_scope(self._sessions) as session:
            return {name: int(count) for name, count in session.execute(statement)}

    def hourly_counts(self, stages: tuple[str, ...], since: datetime) -> dict[tuple[int | None, str, datetime], int]:
        """Rows per (connection, stage, hour they started in) since ``since``: one grouped query, its range
        on ix_audit_events_created_at (bounded by ``since``, so it reads the last hours only)."""
        with session_scope(self._sessions) as session:
            dialect = session.get_bind().dialect.name
            # The UTC hour a row falls in, as each database spells it (SQLite keeps naive UTC; PostgreSQL's
            # date_trunc would truncate in the session's zone, so the value is taken to UTC first).
            hour = (func.date_trunc("hour", func.timezone("UTC", AuditEvent.created_at)) if dialect == "postgresql"
                    else func.strftime("%Y-%m-%d %H:00:00", AuditEvent.created_at))
            statement = (select(AuditEvent.connection_id, AuditEvent.stage, hour, func.count())
                         .where(AuditEvent.created_at >= since, AuditEvent.stage.in_(stages))
                         .group_by(AuditEvent.connection_id, AuditEvent.stage, hour))
            counts = {}
            for connection_id, stage, started, n in session.execute(statement):
                if isinstance(started, str):
                    started = datetime.fromisoformat(started)
                counts[(connection_id, stage, started.replace(tzinfo=None))] = int(n)
            return counts

    def count(self, stage: str | None = None) -> int:
        statement = select(func.count()).select_from(AuditEvent)
        if stage is not None:
            statement = statement.where(AuditEvent.stage == stage)
        with session_scope(self._sessions) as session:
            return session.scalar(statement) or 0

    @staticmethod
    def _of_record(connection_id: int | None, record_type: str, record_id: str | None):
        """The rows of one record (of every record of the type when ``record_id`` is None)."""
        same_connection = (
            AuditEvent.connection_id.is_(None) if connection_id is None else AuditEvent.connection_id == connection_id
        )
        statement = select(AuditEvent).where(same_connection, AuditEvent.record_type == record_type)
        return statement if record_id is None else statement.where(AuditEvent.record_id == str(record_id))


def _record_key(row: dict[str, Any]) -> tuple[int | None, str, str]:
    return row["connection_id"], row["record_type"], row["record_id"]


def _fold_repeats(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows with each run of "retrying" rows of one record folded into the run's first row (a copy,
    its ``times`` and ``last_at`` moved on); and the positions of the "retrying" rows that are the first
    of their record here, which may continue a run already stored (only a connection's records are folded)."""
    if not any(row["stage"] == RETRYING for row in rows):
        return rows, []  # the usual batch: nothing to fold, nothing copied
    folded: list[dict[str, Any]] = []
    latest: dict[tuple[int | None, str, str], int] = {}  # record → position of its latest row in folded
    continuing: list[int] = []
    for row in rows:
        key = _record_key(row)
        before = latest.get(key)
        if row["stage"] == RETRYING and row["connection_id"] is not None:
            if before is not None and folded[before]["stage"] == RETRYING:
                first = folded[before]
                folded[before] = {**first, "times": first["times"] + row["times"], "last_at": row["created_at"]}
                continue
            if before is None:
                continuing.append(len(folded))
        latest[key] = len(folded)
        folded.append(row)
    return folded, continuing


def _bump_retrying(session: Session, rows: list[dict[str, Any]]) -> set[tuple[int | None, str, str]]:
    """Add ``rows`` (retrying, of a connection) to the stored rows they continue: those records whose
    latest row is "retrying". One UPDATE per distinct count (nearly always one); returns the records
    whose row took them."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["times"], []).append(row)
    bumped: set[tuple[int | None, str, str]] = set()
    for times, group in groups.items():
        ids_by_type: dict[tuple[int, str], list[str]] = {}
        for row in group:
            ids_by_type.setdefault((row["connection_id"], row["record_type"]), []).append(row["record_id"])
        latest = (select(func.max(AuditEvent.id))
                  .where(or_(*(and_(AuditEvent.connection_id == connection_id, AuditEvent.record_type == record_type,
                                    AuditEvent.record_id.in_(ids))
                               for (connection_id, record_type), ids in ids_by_type.items())))
                  .group_by(AuditEvent.connection_id, AuditEvent.record_type, AuditEvent.record_id))
        last_at = max(row["last_at"] or row["created_at"] for row in group)
        statement = (update(AuditEvent)
                     .where(AuditEvent.id.in_(latest.scalar_subquery()), AuditEvent.stage == RETRYING)
                     .values(times=AuditEvent.times + times, last_at=last_at)
                     .returning(AuditEvent.connection_id, AuditEvent.record_type, AuditEvent.record_id)
                     .execution_options(synchronize_session=False))
        bumped.update(tuple(key) for key in session.execute(statement))
    return bumped


def _error_class_of_row():
    """``error_class`` of a row's detail, in SQL."""
    def text(key: str):
        return func.nullif(AuditEvent.detail[key].as_string(), "")
    return func.coalesce(text("error_code"), text("error"), "Unclassified")


# Written inline rather than bound, so the planner matches the partial index of failed rows on it.
_IS_FAILED = AuditEvent.stage == literal_column(f"'{FAILED}'")


def _still_failing(connection_id: int | None, since: datetime | None, record_type: str | None,
                   error: str | None) -> list:
    """The conditions on an audit row that is a failure still standing, as one statement's WHERE.

    A failure stands until a later sync of the same record succeeds (written or skipped: Zoho holds
    it) under the same connection, or an operator dismisses it; a later failure takes its place. A webhook of a tenant that was not
    connected yet failed without a connection: its tenant's connection, once there, resolves it.
    """
    later = aliased(AuditEvent)
    tenant = AuditEvent.detail["tenant_id"].as_string()
    tenant_connection = (select(Connection.id).where(Connection.xero_tenant_id == tenant).correlate(AuditEvent)
                         .scalar_subquery())
    same_record_later = (later.record_type == AuditEvent.record_type, later.record_id == AuditEvent.record_id,
                         later.id > AuditEvent.id)
    conditions = [
        _IS_FAILED,
        ~exists().where(*same_record_later, later.stage.in_((WRITTEN, SKIPPED, FAILED, DISMISSED)),
                        later.connection_id == func.coalesce(AuditEvent.connection_id, tenant_connection)),
        ~exists().where(*same_record_later, later.stage.in_((FAILED, DISMISSED)), AuditEvent.connection_id.is_(None),
                        later.connection_id.is_(None)),
    ]
    if connection_id is not None:
        own_tenant = select(Connection.xero_tenant_id).where(Connection.id == connection_id).scalar_subquery()
        conditions.append(or_(AuditEvent.connection_id == connection_id,
                              and_(AuditEvent.connection_id.is_(None), tenant == own_tenant)))
    if since is not None:
        conditions.append(AuditEvent.created_at >= since)
    if record_type is not None:
        conditions.append(AuditEvent.record_type == record_type)
    if error is not None:
        conditions.append(func.lower(_error_class_of_row()) == error.lower())
    return conditions


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
        self._rows.append(self._log.unlogged_row(**fields))

    def flush(self) -> int:
        """Logs the rows (``_log_rows``: a line per stage of the batch) and writes them."""
        rows, self._rows = self._rows, []
        _log_rows(rows)
        self._log.write_rows(rows)
        return len(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __getattr__(self, name: str):
        return getattr(self._log, name)
