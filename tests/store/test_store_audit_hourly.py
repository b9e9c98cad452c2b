"""The Connections page's per-hour counts (AuditLog.hourly_counts), on SQLite and on PostgreSQL: the same UTC
hours either way, whatever zone the database session is in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import event

from connector.store.audit import FAILED, FETCHED, WRITTEN

NOW = datetime(2026, 3, 1, 12, 40, tzinfo=timezone.utc)


def _in_india(dbapi_connection, _) -> None:
    dbapi_connection.execute("SET TIME ZONE 'Asia/Kolkata'")


def test_rows_are_counted_per_connection_stage_and_utc_hour_since_the_bound(store) -> None:
    on_postgres = store.engine.dialect.name == "postgresql"
    if on_postgres:
        # A session zone 5.5 hours off UTC: truncating in it would shift every hour by 30 minutes.
        event.listen(store.engine, "connect", _in_india)
        store.engine.dispose()
    try:
        _count_hours(store)
    finally:
        if on_postgres:  # the PostgreSQL store is the session's: the next test gets it as it was
            event.remove(store.engine, "connect", _in_india)
            store.engine.dispose()


def _count_hours(store) -> None:
    rows = []
    for at, stage, connection_id in ((NOW, WRITTEN, 1), (NOW - timedelta(minutes=39), WRITTEN, 1),
                                     (NOW - timedelta(minutes=41), WRITTEN, 1), (NOW - timedelta(hours=3), FAILED, 1),
                                     (NOW - timedelta(hours=3), FAILED, 2), (NOW, FETCHED, 1),
                                     (NOW - timedelta(hours=25), WRITTEN, 1)):
        row = store.audit.row(connection_id=connection_id, record_type="contact", record_id=f"r{len(rows)}",
                              stage=stage)
        row["created_at"] = at
        rows.append(row)
    store.audit.write_rows(rows)

    counts = store.audit.hourly_counts((WRITTEN, FAILED), since=NOW - timedelta(hours=24))
    assert counts == {(1, WRITTEN, datetime(2026, 3, 1, 12)): 2, (1, WRITTEN, datetime(2026, 3, 1, 11)): 1,
                      (1, FAILED, datetime(2026, 3, 1, 9)): 1, (2, FAILED, datetime(2026, 3, 1, 9)): 1}
