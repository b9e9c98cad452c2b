"""The write ledger: per record, a hash of what we last wrote there (echo suppression, issue 5)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import execute_rows, one_probe_per_key, rows_insert, session_scope
from connector.store.tables import WriteLedgerEntry


class WriteLedger:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def record_many(self, connection_id: int, system: str, hashes: Mapping[str, str]) -> None:
        """Remember ``record_key -> content_hash`` for records we just wrote (last write wins)."""
        if not hashes:
            return
        now = self._clock.now()
        rows = [{"connection_id": connection_id, "system": system, "record_key": key, "content_hash": content_hash,
                 "written_at": now} for key, content_hash in hashes.items()]
        columns = ["connection_id", "system", "record_key", "content_hash", "written_at"]
        with session_scope(self._sessions) as session:  # one statement for the batch
            statement = rows_insert(session, WriteLedgerEntry.__table__, columns)
            statement = statement.on_conflict_do_update(
                index_elements=[WriteLedgerEntry.connection_id, WriteLedgerEntry.system,
                                WriteLedgerEntry.record_key],
                set_={"content_hash": statement.excluded.content_hash, "written_at": statement.excluded.written_at},
            )
            execute_rows(session, statement, WriteLedgerEntry.__table__, columns, rows)

    def hashes(self, connection_id: int, system: str, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        with session_scope(self._sessions) as session:
            statement = select(WriteLedgerEntry.__table__).where(WriteLedgerEntry.connection_id == connection_id,
                                                                 WriteLedgerEntry.system == system)
            rows = session.execute(one_probe_per_key(session, statement, WriteLedgerEntry.record_key,
                                                     list(dict.fromkeys(keys))))
            return {row.record_key: row.content_hash for row in rows}
