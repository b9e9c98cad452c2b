"""Engines, sessions and migrations that behave the same on SQLite and PostgreSQL.

SQLite is the embedded default: one file, WAL, foreign keys on, and every transaction opened
with BEGIN IMMEDIATE so threads queue for the write lock instead of failing mid-transaction.
PostgreSQL URLs are pointed at the psycopg 3 driver.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import operator
import select as select_module
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import (ARRAY, Engine, String, TypeDecorator, bindparam, create_engine, event, exc, func, make_url, select,
                        text, true)
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import sqltypes
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from connector.json_codec import dumps_for_storage, loads_from_storage

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# libpq waits forever by default; a health check or a start-up check must not.
PG_CONNECT_TIMEOUT_SECONDS = 10
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x6D6C636F6E6E


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed)
    # Sessions in UTC: psycopg then hands timestamps back in datetime.timezone.utc, which the store's
    # UtcDateTime passes through as they are, instead of converting each from the server's zone.
    options = " ".join(filter(None, [parsed.query.get("options"), "-c TimeZone=UTC"]))
    engine = create_engine(parsed.difference_update_query(["options"]), json_serializer=dumps_for_storage,
                           json_deserializer=loads_from_storage,
                           connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS, "options": options})
    event.listen(engine, "checkout", _drop_dead_connection)
    return engine


def _drop_dead_connection(dbapi_connection, _record, _proxy) -> None:
    """Pessimistic disconnect handling without a round trip. ``pool_pre_ping`` sends a query on every
    checkout, and PostgreSQL counts any query, even an empty one, as a transaction of its own: it
    doubled the transactions of every unit of work. A connection idle in the pool has nothing to read;
    one the server ended (a restart, ``pg_terminate_backend``) has its FATAL notice and EOF waiting on
    the socket, so a zero-timeout poll finds it. The pool then connects afresh."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise exc.DisconnectionError("the pooled PostgreSQL connection is closed")
    try:
        readable, _, _ = select_module.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as error:
        raise exc.DisconnectionError("the pooled PostgreSQL connection has no socket") from error
    if readable:
        raise exc.DisconnectionError("the server ended the pooled PostgreSQL connection")


def probe_database(url: str) -> None:
    """Connect once and run ``SELECT 1`` on a throwaway engine (nothing pooled survives, so a
    process that forks afterwards inherits no connection); raises what the driver raised."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _make_sqlite_engine(parsed) -> Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        json_serializer=dumps_for_storage,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # One shared connection is the only way an in-memory database is seen by every thread.
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take transaction control away from the sqlite3 module so "begin" below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY at once when
        # another thread committed in between; taking the write lock up front avoids that.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


# The session of the enclosing ``one_transaction`` block (per thread and task), with its factory.
_shared_session: contextvars.ContextVar[tuple[sessionmaker, Session] | None] = contextvars.ContextVar(
    "shared_session", default=None)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back when it raises. Inside
    ``one_transaction`` on the same factory it is part of that block's transaction instead."""
    shared = _shared_session.get()
    if shared is not None and shared[0] is factory:
        yield shared[1]
        return
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def one_transaction(factory: sessionmaker[Session]) -> Iterator[None]:
    """Every store call on ``factory`` inside the block shares one session and one transaction, committed
    when the block ends (all or nothing). For a batch's reads, or for writes that belong together; never
    around a call to another system (locks would be held across it, and a write meant to be durable
    before that call would not be). Nested blocks join the outermost one."""
    shared = _shared_session.get()
    if shared is not None and shared[0] is factory:
        yield
        return
    with session_scope(factory) as session:
        token = _shared_session.set((factory, session))
        try:
            yield
        finally:
            _shared_session.reset(token)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (``alembic upgrade head``), safely from many processes."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE makes a second process wait
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return
    with engine.connect() as connection:
        # Workers start together; the lock makes the second one wait, then find nothing to do. Held by the
        # session, not a transaction: a migration may commit part-way (0017 fills a big table in batches, each
        # committed, so no lock is held across the whole fill), and the others must still wait for its end.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")  # in alembic's own transaction (migrations/env.py)
        finally:
            connection.rollback()  # after a failure nothing is left open, so the unlock runs
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            connection.commit()


@functools.cache
def _fields_of(cls) -> Callable[[Any], tuple]:
    return operator.attrgetter(*(field.name for field in dataclasses.fields(cls)))


def from_row(cls, row):
    """The dataclass ``cls`` from an ORM object or a Core row: each field from the row's attribute of its name
    (as a classmethod: ``of = classmethod(from_row)``)."""
    return cls(*_fields_of(cls)(row))


def dialect_insert(session: Session, model):
    """An INSERT that supports ``on_conflict_do_update`` for the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upserts are written for SQLite and PostgreSQL, not {name}")


def upsert_where(session: Session, model, key: dict[str, Any], values: dict[str, Any], where) -> bool:
    """Insert the row of ``key`` with ``values``, or on its key's conflict update it with ``values`` where
    ``where(excluded)`` holds (``excluded``: the row offered); True when a row was written (inserted, or the
    WHERE let the update through: only then does the statement return the row)."""
    statement = dialect_insert(session, model).values(**key, **values)
    statement = statement.on_conflict_do_update(
        index_elements=[getattr(model, column) for column in key], set_=values, where=where(statement.excluded)
    ).returning(model.id)
    return session.execute(statement).first() is not None


def _rows_insert(dialect, table, columns: tuple[str, ...]):
    """An INSERT of many rows that ``on_conflict_do_*`` can extend.

    On PostgreSQL the rows travel as one JSON document and come out of ``jsonb_to_recordset``: one short
    statement and one text parameter whatever the number of rows, so psycopg parses it once and the
    server prepares it once, where a multi-row VALUES list is a new, long text to parse and plan for
    every batch size (and arrays of JSON would be quoted value by value). Rows keep their order.
    Elsewhere it is a plain INSERT executed with the list of rows.
    """
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    if dialect.name != "postgresql":
        raise NotImplementedError(f"upserts are written for SQLite and PostgreSQL, not {dialect.name}")
    fields = ", ".join(f"{name} {_pg_type(table.c[name].type, dialect)}" for name in columns)
    rows = text(f"SELECT {', '.join(columns)} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS batch({fields})"
                ).columns(*[table.c[name] for name in columns])
    return postgresql.insert(table).from_select(list(columns), rows)


# Statements built (and on PostgreSQL compiled) once per database engine's dialect and shape. The dialect
# INSERT ... ON CONFLICT constructs have no cache key, so SQLAlchemy compiles them afresh on every execution.
_built_for: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def _built_once(dialect, shape: Hashable, build: Callable[[], Any]) -> Any:
    built = _built_for.get(dialect)
    if built is None:
        built = _built_for.setdefault(dialect, {})
    found = built.get(shape)
    if found is None:
        found = built[shape] = build()
    return found


def _compiled_rows_insert(dialect, table, columns: tuple[str, ...], on_conflict) -> tuple[str, dict]:
    """The SQL of the PostgreSQL rows INSERT and the bind processor of each column JSON does not carry as is."""
    statement = _rows_insert(dialect, table, columns)
    if on_conflict is not None:
        statement = on_conflict(statement)
    compiled = statement.compile(dialect=dialect)
    if set(compiled.binds) != {"rows"}:
        raise ValueError(f"on_conflict must add no parameters of its own (it added {sorted(set(compiled.binds) - {'rows'})})")
    # Each value as SQLAlchemy would bind it (a naive timestamp is refused), JSON documents as they are.
    processors = {name: process for name in columns
                  if not isinstance(table.c[name].type.dialect_impl(dialect), sqltypes.JSON)
                  and (process := table.c[name].type.bind_processor(dialect))}
    return compiled.string, processors


def insert_rows(session: Session, table, columns: list[str], rows: list[dict[str, Any]],
                on_conflict: Callable[[Any], Any] | None = None):
    """INSERT ``rows`` (dicts of ``columns``) into ``table`` in one statement; returns the result.

    ``on_conflict`` extends the INSERT (``on_conflict_do_*``, ``returning``). The statement is built once
    per database and shape, so ``on_conflict`` must be a function of the statement alone (a module-level
    function, not a closure over this call's values); on PostgreSQL one that adds a parameter is refused.
    """
    if on_conflict is not None and "<locals>" in on_conflict.__qualname__:
        # Made afresh per call, it would be a new shape every time: built again, and kept for ever.
        raise ValueError(f"on_conflict must be a module-level function, not {on_conflict.__qualname__}")
    connection = session.connection()
    dialect = connection.dialect
    shape = (table, tuple(columns), on_conflict)
    if dialect.name != "postgresql":
        def build():
            statement = _rows_insert(dialect, table, tuple(columns))
            return statement if on_conflict is None else on_conflict(statement)
        return connection.execute(_built_once(dialect, shape, build), rows)
    sql, processors = _built_once(dialect, shape, lambda: _compiled_rows_insert(dialect, table, tuple(columns),
                                                                               on_conflict))
    batch = [{name: processors[name](row.get(name)) if name in processors else row.get(name) for name in columns}
             for row in rows]
    return connection.exec_driver_sql(sql, {"rows": dumps_for_storage(batch)})


def _pg_type(column_type, dialect) -> str:
    impl = column_type.dialect_impl(dialect)
    if isinstance(impl, TypeDecorator):
        impl = impl.impl_instance
    return impl.compile(dialect=dialect)


@contextmanager
def single_statement(factory: sessionmaker[Session]) -> Iterator[Any]:
    """A connection for one statement (Core): a read, or a write that is whole on its own. On PostgreSQL,
    outside a ``one_transaction`` block, the statement runs in autocommit, where it is a transaction of its
    own just as between BEGIN and COMMIT, in one round trip instead of three: psycopg sends BEGIN and COMMIT
    as statements of their own (https://www.psycopg.org/psycopg3/docs/basic/transactions.html), and every
    API call reads its token set this way. Inside ``one_transaction`` the statement joins that block's
    transaction; on SQLite it opens one as ``session_scope`` does. Two statements meant to agree belong in
    ``one_transaction`` or ``session_scope``, never in two of these."""
    shared = _shared_session.get()
    engine = factory.kw.get("bind")
    if (shared is not None and shared[0] is factory) or engine is None or engine.dialect.name != "postgresql":
        with session_scope(factory) as session:
            yield core_connection(session)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def core_connection(session: Session):
    """The session's connection, for Core statements: rows come back as they are, without the ORM's
    result processing. ORM changes still pending in the session are flushed first, so a read sees the
    unit of work's own writes as an ORM query would."""
    session.flush()
    return session.connection()


def _probe_statement(dialect_name: str, table, key_column: str, equal: tuple[str, ...]):
    statement = select(table).where(*[table.c[name] == bindparam(name) for name in equal])
    return probe_by_key(dialect_name, statement, table.c[key_column], unique=True)


def probe_by_key(dialect_name: str, statement, column, *, unique: bool):
    """``statement`` (a SELECT with its own conditions) for each of the keys bound as ``probe_keys`` in
    ``column``: on PostgreSQL a LATERAL probe per key (see ``probe_rows``), elsewhere an IN list."""
    if dialect_name != "postgresql":
        return statement.where(column.in_(bindparam("probe_keys", expanding=True)))
    wanted = func.unnest(sa_cast(bindparam("probe_keys", type_=ARRAY(String)), ARRAY(String))).table_valued(
        "key").render_derived(name="wanted")
    # LIMIT 1 (a unique key) or OFFSET 0 (several rows a key) keeps the planner from flattening the probe
    # into a plain join, which the same stale statistics would plan as a scan.
    probe = statement.where(column == wanted.c.key)
    probe = (probe.limit(1) if unique else probe.offset(0)).lateral("probe")
    return select(*probe.c).select_from(wanted).join(probe, true())


# Built once per shape: building the LATERAL form (its column collections above all) costs more than running it.
_probe_statements: dict[tuple, Any] = {}


def probe_rows(session: Session, table, key_column: str, keys: list[str], **equal: Any):
    """The rows of ``table`` whose columns equal ``equal`` and whose ``key_column`` is one of ``keys``, read by
    one index probe per key, as Core rows (a batch read needs no identity map, and one would keep stale copies
    in a shared session).

    On PostgreSQL a plain IN list is only as good as the table's statistics: while they still describe
    a much smaller table (a first import, a burst; never analysed, every equality counts as 0.5 %, so a list
    of 50 keys looks 50 times less selective than the connection alone), the planner probes an index by the
    other columns alone and filters the list over every row they match: a whole connection per batch. A
    LATERAL probe per key (``key_column`` must be unique among the rows matching ``equal``) keeps the key in
    the index condition whatever the statistics say. SQLite's planner probes per key for an IN list on its own.
    """
    connection = core_connection(session)
    shape = (connection.dialect.name, table, key_column, tuple(equal))
    statement = _probe_statements.get(shape)
    if statement is None:
        statement = _probe_statements[shape] = _probe_statement(*shape)
    return connection.execute(statement, {**equal, "probe_keys": keys})
