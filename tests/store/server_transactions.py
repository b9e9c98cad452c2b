"""Transactions PostgreSQL ran for one piece of work, as the server reported them on the work's own
connections: every transaction, explicit or implicit (a statement sent outside one, even an empty query),
ends with the server's ReadyForQuery message saying the session is idle again, ``I``
(https://www.postgresql.org/docs/current/protocol-flow.html,
https://www.postgresql.org/docs/current/protocol-message-formats.html). libpq's trace of the connection
(https://www.postgresql.org/docs/current/libpq-control.html, PQtrace) shows each of them.

Not ``pg_stat_database``'s counter: it also holds transactions the server starts by itself. An idle backend
that falls behind the shared invalidation queue, which another database's DDL fills (a parallel test's
migrations), is signalled and runs an empty transaction to catch up (``ProcessCatchupInterrupt``,
https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/storage/ipc/sinval.c); autovacuum's
ANALYZE counts there too. Both came and went with the machine's timing, one transaction at a time."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Callable

from psycopg import pq
from sqlalchemy import event

from connector.store import Store

IDLE_AGAIN = ["ReadyForQuery", " I"]  # a trace line's fields after direction and length


def server_transactions(store: Store, work: Callable[[], object]) -> int:
    """Runs ``work`` on connections opened for it (the pool is emptied before and after) and returns the
    transactions the server ended on them. A connection ``work`` leaves checked out is an error: its count
    would be incomplete."""
    engine = store.engine
    traces: list[IO[bytes]] = []
    open_connections: dict[int, int] = {}  # id of a traced connection: the descriptor its trace writes to

    def trace(dbapi_connection, _record) -> None:
        handle = tempfile.TemporaryFile()
        descriptor = os.dup(handle.fileno())  # libpq's stream takes it over (psycopg never closes that stream)
        dbapi_connection.pgconn.trace(descriptor)
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traces.append(handle)
        open_connections[id(dbapi_connection)] = descriptor

    def untrace(dbapi_connection, _record) -> None:
        descriptor = open_connections.pop(id(dbapi_connection), None)
        if descriptor is not None:
            dbapi_connection.pgconn.untrace()  # flushes what libpq buffered; nothing writes to the stream again
            os.close(descriptor)

    engine.dispose()
    event.listen(engine, "connect", trace)
    event.listen(engine, "close", untrace)
    event.listen(engine, "close_detached", untrace)
    try:
        work()
        engine.dispose()
    finally:
        event.remove(engine, "connect", trace)
        event.remove(engine, "close", untrace)
        event.remove(engine, "close_detached", untrace)
    if open_connections:
        raise AssertionError(f"{len(open_connections)} connection(s) of the work were still checked out")
    ended = 0
    for handle in traces:
        with handle:
            handle.seek(0)
            ended += sum(line.split("\t")[2:] == IDLE_AGAIN for line in handle.read().decode().splitlines())
    return ended
