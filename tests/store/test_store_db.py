from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config
from sqlalchemy import inspect, select, text

from connector.store import Store
from connector.store.db import (MIGRATIONS_DIR, _built_for, insert_rows, make_engine, migrate, normalise_url, probe_rows,
                                session_scope)
from connector.store.tables import SEARCH_NAME_TRIGRAM_INDEX, Base, Connection, WriteLedgerEntry


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migration_from_empty_reaches_head_and_matches_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        # The trigram index exists only where pg_trgm could be had, so the models leave it out.
        context = MigrationContext.configure(connection, opts={
            "compare_type": True,
            "include_object": lambda obj, name, kind, reflected, compare_to: name != SEARCH_NAME_TRIGRAM_INDEX})
        assert context.get_current_revision() == _head_revision()
        assert compare_metadata(context, Base.metadata) == []
    assert set(Base.metadata.tables) <= set(inspect(store.engine).get_table_names())


def test_migrate_twice_changes_nothing(store: Store) -> None:
    migrate(store.engine)
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == _head_revision()


def test_processes_migrating_postgresql_together_wait_for_each_other_and_release_the_lock(pg_database_url) -> None:
    """The lock is the session's (a migration may commit part-way): the second waits, finds nothing to do, and
    neither leaves it held."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(pg_database_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(migrate, engines))
        with engines[0].connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == _head_revision()
            assert connection.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                           "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalar() == 0
    finally:
        for engine in engines:
            engine.dispose()


def test_sqlite_engine_creates_its_directory_and_uses_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'deep' / 'er' / 'c.db'}")
    try:
        migrate(engine)
        assert (tmp_path / "deep" / "er" / "c.db").exists()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalise_url("postgres://h/d") == "postgresql+psycopg://h/d"
    assert normalise_url("sqlite:///var/connector.db") == "sqlite:///var/connector.db"


def test_timestamps_come_back_aware_in_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    with session_scope(store.sessions) as session:
        session.add(Connection(name="n", xero_tenant_id="t", created_at=created, updated_at=created))
    with session_scope(store.sessions) as session:
        stored = session.scalars(select(Connection)).one().created_at
    assert stored == created
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        with session_scope(store.sessions) as session:
            session.add(Connection(name="n", xero_tenant_id="t", created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1)))
            session.flush()


def test_session_scope_rolls_back_when_the_block_raises(store: Store) -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(RuntimeError):
        with session_scope(store.sessions) as session:
            session.add(Connection(name="n", xero_tenant_id="t", created_at=now, updated_at=now))
            session.flush()
            raise RuntimeError("boom")
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM connections")).scalar() == 0


def test_foreign_keys_are_enforced(store: Store) -> None:
    from connector.store.links import LinkStore

    with pytest.raises(Exception, match="(?i)foreign key"):
        LinkStore(store.sessions).save(999, "contact", "x", zoho_module="Accounts", zoho_id="z", content_hash="h")


def test_store_repr_hides_the_database_password() -> None:
    store = Store(make_engine("postgresql://app:hunter2-pw@127.0.0.1:5432/connector"))
    try:
        assert "hunter2-pw" not in repr(store) and "postgresql+psycopg" in repr(store)
    finally:
        store.close()


def _connection_id(store: Store) -> int:
    return store.connections.create(name="n", xero_tenant_id="t").id


def _do_nothing_on_conflict(statement):
    return statement.on_conflict_do_nothing(index_elements=["connection_id", "system", "record_key"])


def test_insert_rows_reuses_the_statement_built_for_a_shape_and_runs_it_with_each_call_s_rows(store: Store) -> None:
    connection_id = _connection_id(store)
    table = WriteLedgerEntry.__table__
    columns = ["connection_id", "system", "record_key", "content_hash", "written_at"]
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for key, content_hash in (("a", "1"), ("b", "2"), ("a", "3")):
        with session_scope(store.sessions) as session:
            insert_rows(session, table, columns, [{"connection_id": connection_id, "system": "zoho", "record_key": key,
                                                   "content_hash": content_hash, "written_at": now}],
                        on_conflict=_do_nothing_on_conflict)
    assert store.write_ledger.hashes(connection_id, "zoho", ["a", "b"]) == {"a": "1", "b": "2"}
    with session_scope(store.sessions) as session:
        dialect = session.connection().dialect
    assert len([shape for shape in _built_for[dialect] if shape[2] is _do_nothing_on_conflict]) == 1


def _set_a_constant_on_conflict(statement):
    return statement.on_conflict_do_update(index_elements=["connection_id", "system", "record_key"],
                                           set_={"content_hash": "x"})


def test_insert_rows_refuses_an_on_conflict_made_per_call(store: Store) -> None:
    # Each would be a shape of its own: built again on every call and kept in the cache for ever.
    with pytest.raises(ValueError, match="module-level function"):
        with session_scope(store.sessions) as session:
            insert_rows(session, WriteLedgerEntry.__table__, ["record_key"], [{"record_key": "a"}],
                        on_conflict=lambda statement: statement.on_conflict_do_nothing())


def test_insert_rows_refuses_an_on_conflict_that_binds_a_value_of_its_own(pg_database_url) -> None:
    # Built once per shape, such a value would be the first call's for every later call.
    store = Store.open(pg_database_url)
    connection_id = _connection_id(store)
    row = {"connection_id": connection_id, "system": "zoho", "record_key": "a", "content_hash": "1",
           "written_at": datetime(2026, 3, 1, tzinfo=timezone.utc)}
    try:
        with pytest.raises(ValueError, match="no parameters of its own"):
            with session_scope(store.sessions) as session:
                insert_rows(session, WriteLedgerEntry.__table__, list(row), [row], on_conflict=_set_a_constant_on_conflict)
    finally:
        store.close()


def test_probe_rows_reads_the_keys_asked_for_within_the_equal_columns(store: Store) -> None:
    connection_id = _connection_id(store)
    other_id = store.connections.create(name="o", xero_tenant_id="t2").id
    store.write_ledger.record_many(connection_id, "zoho", {"a": "1", "b": "2", "c": "3"})
    store.write_ledger.record_many(other_id, "zoho", {"a": "9"})
    store.write_ledger.record_many(connection_id, "xero", {"a": "8"})
    with session_scope(store.sessions) as session:
        first = {row.record_key: row.content_hash for row in probe_rows(
            session, WriteLedgerEntry.__table__, "record_key", ["a", "c", "z"], connection_id=connection_id,
            system="zoho")}
        again = {row.record_key: row.content_hash for row in probe_rows(
            session, WriteLedgerEntry.__table__, "record_key", ["b"], connection_id=other_id, system="zoho")}
    assert (first, again) == ({"a": "1", "c": "3"}, {})
