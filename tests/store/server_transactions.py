"""Transactions PostgreSQL counted for one database (``pg_stat_database``) while a piece of work ran."""

from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import inspect, text

from connector.store import Store


def _settled_count(admin, store: Store) -> int:
    """The database's transaction count once every backend of ``store`` has ended (a backend reports
    its statistics when it exits, so the count is then complete)."""
    name = store.engine.url.database
    store.engine.dispose()
    deadline = time.monotonic() + 30
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the backends of {name} did not end")
        time.sleep(0.05)
    # An exiting backend may leave pg_stat_activity a moment before its last counts reach pg_stat_database:
    # the count is settled once it reads the same twice, a tenth of a second apart.
    count = _count(admin, name)
    while True:
        time.sleep(0.1)
        again = _count(admin, name)
        if again == count:
            return count
        if time.monotonic() > deadline:
            raise TimeoutError(f"the transaction count of {name} did not settle")
        count = again


def _count(admin, name: str) -> int:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                        (name,)).fetchone()
    return int(row[0])


def _without_autovacuum(store: Store) -> None:
    """The database's count includes autovacuum's own transactions (an ANALYZE of a table the work grew),
    which come and go with the machine's timing: off for these tables, the count is the work's alone."""
    with store.engine.begin() as connection:
        for table in inspect(connection).get_table_names():
            connection.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)'))


def server_transactions(admin, store: Store, work: Callable[[], object]) -> int:
    _without_autovacuum(store)
    before = _settled_count(admin, store)
    work()
    return _settled_count(admin, store) - before
