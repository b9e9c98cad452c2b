"""The ``store`` fixture: every test runs once on a SQLite file and once on real PostgreSQL.

PostgreSQL gets one fresh, uniquely named database per test session (migrated from empty),
emptied between tests. When PostgreSQL is unreachable those tests fail; they never skip.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from connector.store import Store
from connector.store.db import MIGRATIONS_DIR, make_engine
from connector.store.tables import Base
from tests.conftest import fresh_pg_database


@pytest.fixture(scope="session")
def postgres_url(pg_admin) -> Iterator[str]:
    with fresh_pg_database(pg_admin) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Iterator[Store]:
    store = Store.open(postgres_url)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'data' / 'connector.db'}")
        yield store
        store.close()
        return
    store = request.getfixturevalue("postgres_store")
    try:
        yield store
    finally:
        # DELETE is quicker than TRUNCATE on tables this small; children go first.
        with store.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def connection_id(store: Store) -> int:
    return store.connections.create(name="Demo Co", xero_tenant_id="tenant-1", xero_tenant_name="Demo Co Ltd").id


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path):
    """An engine on an empty database, nothing migrated: a SQLite file, or a fresh PostgreSQL database
    (tests/conftest.py SERVICE_VARIANTS names that variant)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'old.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_pg_database(request.getfixturevalue("pg_admin")) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def migrated_to(engine, revision: str):
    """A transaction on ``engine`` with the schema migrated up to ``revision`` and one connection (id 1) in
    it: rows written as a store of that revision wrote them, for a later migration to fill."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.execute(text("INSERT INTO connections (id, name, xero_tenant_id, created_at, updated_at) "
                                "VALUES (1, 'Old', 't-1', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        yield connection
