from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config
from sqlalchemy import inspect, select, text

from connector.store import Store
from connector.store.db import MIGRATIONS_DIR, make_engine, migrate, normalise_url, session_scope
from connector.store.tables import Base, Connection


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migration_from_empty_reaches_head_and_matches_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() == _head_revision()
        assert compare_metadata(context, Base.metadata) == []
    assert set(Base.metadata.tables) <= set(inspect(store.engine).get_table_names())


def test_migrate_twice_changes_nothing(store: Store) -> None:
    migrate(store.engine)
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == _head_revision()


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
