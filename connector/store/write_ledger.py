"""The write ledger: per record, a hash of what we last wrote there (echo suppression)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import insert_rows, probe_rows, session_scope
from connector.store.tables import WriteLedgerEntry


def _last_write_wins(statement):
    return statement.on_conflict_do_update(
        index_elements=[WriteLedgerEntry.connection_id, WriteLedgerEntry.system, WriteLedgerEntry.record_key],
        set_={"content_hash": statement.excluded.content_hash, "written_at": statement.excluded.written_at},
    )


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
            insert_rows(session, WriteLedgerEntry.__table__, columns, rows, on_conflict=_last_write_wins)

    def hashes(self, connection_id: int, system: str, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        with session_scope(self._sessions) as session:
            rows = probe_rows(session, WriteLedgerEntry.__table__, "record_key", list(dict.fromkeys(keys)),
                              connection_id=connection_id, system=system)
            return {row.record_key: row.content_hash for row in rows}
