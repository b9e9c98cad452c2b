"""The ``store`` fixture: every test runs once on a SQLite file and once on real PostgreSQL.

PostgreSQL gets one fresh, uniquely named database per test session (migrated from empty),
emptied between tests. When PostgreSQL is unreachable those tests fail; they never skip.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from connector.store import Store
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
