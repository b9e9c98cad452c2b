"""Every query the sync path makes is served by an index, checked with EXPLAIN on PostgreSQL holding
an organisation's worth of history (so the planner has a real choice to make)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import event

from connector.store import Store
from connector.store.audit import FAILED, RECEIVED, RETRYING, WRITTEN
from connector.store.links import LinkWrite

LARGE_TABLES = ("id_links", "audit_events", "xero_snapshots", "write_ledger")
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def history_store(pg_database_url):
    store = Store.open(pg_database_url)
    connection_id = store.connections.create(name="History Ltd", xero_tenant_id="tenant-h").id
    other_id = store.connections.create(name="Other Ltd", xero_tenant_id="tenant-o").id
    with psycopg.connect(pg_database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY id_links (connection_id, kind, xero_id, zoho_module, zoho_id, content_hash, "
                      "source_updated_at, updated_at) FROM STDIN") as copy:
            for n in range(40_000):
                kind = ("contact", "contact_person", "invoice", "invoice_lines")[n % 4]
                copy.write_row(((connection_id, other_id)[n % 5 == 0], kind, f"x-{n // 4}", "Invoices",
                                str(10**18 + n), "h", NOW, NOW))
        with cur.copy("COPY audit_events (connection_id, sync_id, direction, record_type, record_id, stage, "
                      "created_at) FROM STDIN") as copy:
            for n in range(60_000):
                copy.write_row((connection_id, f"s-{n // 4}", "xero_to_zoho", "invoice", f"x-{n // 6}",
                                FAILED if n % 600 == 5 else (RECEIVED, WRITTEN)[n % 2], NOW - timedelta(seconds=n)))
        with cur.copy("COPY xero_snapshots (connection_id, resource, xero_id, source_updated_at, payload, "
                      "fetched_at) FROM STDIN") as copy:
            for n in range(40_000):
                copy.write_row((connection_id, "invoices", f"x-{n}", NOW, '{"InvoiceID": "x"}', NOW))
        with cur.copy("COPY write_ledger (connection_id, system, record_key, content_hash, written_at) "
                      "FROM STDIN") as copy:
            for n in range(10_000):
                copy.write_row((connection_id, "zoho", str(10**18 + n), "h", NOW))
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE")
    yield store, connection_id
    store.close()


@pytest.fixture
def fresh_store(pg_database_url):
    """A store on an empty PostgreSQL database and a connection in it: tables written later are never analysed."""
    store = Store.open(pg_database_url)
    yield store, store.connections.create(name="Fresh Ltd", xero_tenant_id="tenant-f").id
    store.close()


def plans_of_statements(store: Store, work) -> list[tuple[str, list[str]]]:
    """Run ``work`` against the store; EXPLAIN each statement it sent, with its own parameters."""
    return [(statement, list(_nodes(explain(store, statement, parameters))))
            for statement, parameters in statements_of(store, work)]


def _nodes(plan: dict):
    """Each node of a plan as "Node Type relation index"."""
    for node in _plan_nodes(plan):
        yield f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Index Name', '')}".strip()


def test_the_sync_path_reads_large_tables_only_through_indexes(history_store) -> None:
    store, connection_id = history_store
    other_id = store.connections.by_tenant("tenant-o").id
    ids = [f"x-{n}" for n in range(0, 500, 5)]

    def sync_path():
        store.connections.by_tenant("tenant-h")
        store.connections.get(connection_id)
        store.snapshots.get(connection_id, "invoices", "x-1")
        store.snapshots.get_many(connection_id, "invoices", ids)
        store.snapshots.put_if_newer(connection_id, "invoices", "x-1", source_updated_at=NOW, payload={})
        store.snapshots.put_many_if_newer(connection_id, "invoices", [(i, NOW, {}) for i in ids])
        store.links.get(connection_id, "invoice", "x-2")
        store.links.get_many(connection_id, "contact", ids)
        store.links.save(connection_id, "invoice", "x-2", zoho_module="Invoices", zoho_id="1", content_hash="h2",
                         source_updated_at=NOW)
        store.links.by_zoho_ids([connection_id, other_id], "Invoices", [str(10**18 + n) for n in range(0, 50, 5)])
        store.write_ledger.record_many(connection_id, "zoho", {str(10**18 + n): "h" for n in range(50)})
        store.write_ledger.hashes(connection_id, "zoho", [str(10**18 + n) for n in range(50)])
        batch = store.audit.batch()
        for i in ids:
            batch.record(connection_id=connection_id, record_type="invoice", record_id=i, stage=RECEIVED)
        batch.flush()
        for _ in range(2):  # the second run of retries continues the first's rows
            for i in ids:
                batch.record(connection_id=connection_id, record_type="invoice", record_id=i, stage=RETRYING)
            batch.flush()
        store.audit.record(connection_id=connection_id, record_type="invoice", record_id="x-3", stage=WRITTEN)
        store.audit.latest_stage(connection_id, "invoice", "x-3")
        store.audit.trail(connection_id, "invoice", "x-3")

    plans = plans_of_statements(store, sync_path)

    assert len(plans) >= 15
    for statement, nodes in plans:
        scans = [n for n in nodes if n.startswith("Seq Scan") and n.split()[2] in LARGE_TABLES]
        assert not scans, f"{statement}\n-> {nodes}"
    by_zoho = next(nodes for statement, nodes in plans if "id_links.zoho_id IN" in statement)
    assert any("ix_id_links_zoho" in n for n in by_zoho), by_zoho
    link_get = next(nodes for statement, nodes in plans if "id_links.xero_id =" in statement)
    assert any("uq_id_links_connection_kind_xero" in n for n in link_get), link_get


# The batched hot path (what the workers send per batch of records) and the index each statement must use:
# a read by that index, or for an upsert the arbiter of its ON CONFLICT. Keyed by a fragment of the SQL.
BATCH_PATH_INDEXES = {
    "FROM connections WHERE connections.xero_tenant_id": "uq_connections_xero_tenant_id",  # one row per organisation
    "FROM xero_snapshots": "uq_xero_snapshots_connection_resource_xero",
    "INSERT INTO xero_snapshots": "uq_xero_snapshots_connection_resource_xero",
    "FROM id_links": "uq_id_links_connection_kind_xero",
    "INSERT INTO id_links": "uq_id_links_connection_kind_xero",
    "INSERT INTO write_intents": "uq_write_intents_connection_kind_xero",
    "FROM write_intents": "uq_write_intents_connection_kind_xero",
    "INSERT INTO write_ledger": "uq_write_ledger_connection_system_record",
    "FROM write_ledger": "uq_write_ledger_connection_system_record",
}


def test_every_batched_hot_path_statement_uses_its_key(history_store) -> None:
    store, connection_id = history_store
    ids = [f"x-{n}" for n in range(0, 500, 5)]
    new_ids = [f"new-{n}" for n in range(50)]

    def batch_path():
        store.connections.by_tenant("tenant-h")
        store.snapshots.get_many(connection_id, "invoices", ids)
        store.snapshots.put_many_if_newer(connection_id, "invoices", [(i, NOW, {}) for i in ids + new_ids])
        store.links.get_many(connection_id, "invoice", ids + new_ids)
        store.links.begin_writes(connection_id, "invoice", new_ids)
        store.links.writes_begun(connection_id, "invoice", new_ids)
        store.links.end_writes(connection_id, "invoice", new_ids[:5])
        store.links.save_many(connection_id, [
            LinkWrite("invoice", i, "Invoices", str(n), "h", NOW) for n, i in enumerate(ids + new_ids)])
        store.write_ledger.record_many(connection_id, "zoho", {str(10**18 + n): "h2" for n in range(50)})
        store.write_ledger.hashes(connection_id, "zoho", [str(10**18 + n) for n in range(50)])
        store.audit.write_rows([store.audit.row(connection_id=connection_id, record_type="invoice", record_id=i,
                                                stage=WRITTEN) for i in ids])

    sent = statements_of(store, batch_path)
    covered = set()
    for statement, parameters in sent:
        expected = [index for fragment, index in BATCH_PATH_INDEXES.items() if fragment in " ".join(statement.split())]
        if not expected:
            assert statement.lstrip().startswith("INSERT INTO audit_events"), statement  # appends only
            continue
        # A table of a few rows is best scanned (connections: one per organisation; write intents: only the
        # writes in flight); forbidding that shows that an index serves the statement once the table grows.
        small = expected[0] in ("uq_connections_xero_tenant_id", "uq_write_intents_connection_kind_xero")
        plan = explain(store, statement, parameters, seq_scans=not small)
        used = {node.get("Index Name") for node in _plan_nodes(plan)} | set(plan.get("Conflict Arbiter Indexes", []))
        assert expected[0] in used, f"{statement}\n-> {plan}"
        assert not any(node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LARGE_TABLES
                       for node in _plan_nodes(plan)), f"{statement}\n-> {plan}"
        covered.add(expected[0])
    assert covered == set(BATCH_PATH_INDEXES.values())


def statements_of(store: Store, work) -> list[tuple[str, object]]:
    """The statements (with their parameters) ``work`` sends, transaction control left out."""
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("EXPLAIN", "BEGIN", "COMMIT", "ROLLBACK", "SELECT 1")):
            sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    return sent


def explain(store: Store, statement: str, parameters, *, seq_scans: bool = True) -> dict:
    """The plan (top node) of one statement with its own parameters; nothing it would change is kept."""
    if isinstance(parameters, (list, tuple)) and parameters and isinstance(parameters[0], dict):
        parameters = parameters[0]  # executemany: one row's plan stands for all
    with store.engine.connect() as conn:
        if not seq_scans:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
        conn.rollback()
    return (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_failures_and_their_counts_read_the_audit_trail_only_through_indexes(history_store) -> None:
    """What `connector failures`, `replay --failed` and `status` ask of a trail of millions of rows."""
    store, connection_id = history_store
    store.audit.record(connection_id=None, record_type="contact", record_id="early", stage=FAILED,
                       detail={"error": "UnknownTenant", "tenant_id": "tenant-h"})

    def listings():
        entries = store.audit.failures(connection_id, 200)
        store.audit.failures(None, 200, since=NOW - timedelta(hours=1), error="NotFound")
        store.audit.failure_counts(connection_id, NOW - timedelta(hours=24))
        store.audit.attempts(entries)

    plans = plans_of_statements(store, listings)

    assert len(plans) == 5
    for statement, nodes in plans:
        assert not [n for n in nodes if n.startswith("Seq Scan audit_events")], f"{statement}\n-> {nodes}"
    for statement, nodes in plans[:3]:
        assert any("ix_audit_events_failed" in n for n in nodes), f"{statement}\n-> {nodes}"


def test_the_retention_delete_uses_the_created_at_index(history_store) -> None:
    store, _ = history_store
    plans = plans_of_statements(store, lambda: store.audit.prune(NOW - timedelta(hours=10), batch_size=1000))
    select_oldest = next(nodes for statement, nodes in plans if statement.lstrip().startswith("SELECT"))
    assert any("ix_audit_events_created_at" in n for n in select_oldest), select_oldest


def test_a_link_lookup_uses_the_link_key_even_before_the_table_is_analysed(fresh_store, pg_database_url) -> None:
    """Links written since the last ANALYZE (a first import, a burst) must not make a lookup by Xero id
    scan every link of the connection: only the (connection, kind, xero id) key may serve it."""
    store, connection_id = fresh_store
    with psycopg.connect(pg_database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY id_links (connection_id, kind, xero_id, zoho_module, zoho_id, content_hash, "
                      "updated_at) FROM STDIN") as copy:
            for n in range(3_000):  # no ANALYZE afterwards: the planner still sees an empty table
                copy.write_row((connection_id, ("contact", "invoice")[n % 2], f"x-{n}", "Invoices",
                                str(10**18 + n), "h", NOW))
        conn.commit()

    plans = plans_of_statements(store, lambda: (
        store.links.get(connection_id, "invoice", "x-1"),
        store.links.get_many(connection_id, "invoice", [f"x-{n}" for n in range(1, 200, 2)])))

    for statement, nodes in plans:
        assert any("uq_id_links_connection_kind_xero" in n for n in nodes), f"{statement}\n-> {nodes}"
    # ...and with the Xero id in the index condition, not filtered over every link of the kind.
    conds = index_conditions(store, lambda: store.links.get_many(connection_id, "invoice",
                                                                 [f"x-{n}" for n in range(1, 200, 2)]))
    assert conds and all("xero_id" in c for c in conds), conds


def test_ledger_and_write_intent_lookups_probe_their_keys_before_the_tables_are_analysed(fresh_store,
                                                                                         pg_database_url) -> None:
    """As for links: rows written since the last ANALYZE must not turn a batch lookup into a filter over
    every ledger entry or write intent of the connection."""
    store, connection_id = fresh_store
    with psycopg.connect(pg_database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY write_ledger (connection_id, system, record_key, content_hash, written_at) "
                      "FROM STDIN") as copy:
            for n in range(3_000):  # no ANALYZE afterwards
                copy.write_row((connection_id, "zoho", str(10**18 + n), "h", NOW))
        with cur.copy("COPY write_intents (connection_id, kind, xero_id, started_at) FROM STDIN") as copy:
            for n in range(3_000):
                copy.write_row((connection_id, "invoice", f"x-{n}", NOW))
        conn.commit()
    keys = [str(10**18 + n) for n in range(0, 3_000, 30)]
    assert store.write_ledger.hashes(connection_id, "zoho", keys) == {k: "h" for k in keys}
    assert store.links.writes_begun(connection_id, "invoice", ["x-1", "x-2", "y-1"]) == {"x-1", "x-2"}

    conds = index_conditions(store, lambda: (
        store.write_ledger.hashes(connection_id, "zoho", keys),
        store.links.writes_begun(connection_id, "invoice", [f"x-{n}" for n in range(0, 3_000, 30)])))
    assert len(conds) == 2, conds
    assert "record_key" in conds[0] and "xero_id" in conds[1], conds


def index_conditions(store: Store, work) -> list[str]:
    """The index conditions of the plans of the SELECT statements ``work`` sends."""
    return [node["Index Cond"]
            for statement, parameters in statements_of(store, work) if statement.lstrip().upper().startswith("SELECT")
            for node in _plan_nodes(explain(store, statement, parameters)) if "Index Cond" in node]


def test_tables_every_record_writes_are_analysed_while_they_grow(pg_database_url) -> None:
    store = Store.open(pg_database_url)
    try:
        with psycopg.connect(pg_database_url) as conn:
            options = dict(conn.execute(
                "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)",
                (["id_links", "xero_snapshots", "write_ledger", "write_intents", "audit_events", "invoice_deals"],)
            ).fetchall())
        assert len(options) == 6
        for table, reloptions in options.items():
            assert "autovacuum_analyze_threshold=1000" in (reloptions or []), table
            assert "autovacuum_analyze_scale_factor=0.02" in (reloptions or []), table
    finally:
        store.close()


def test_failures_on_sqlite_read_the_failed_rows_index_not_the_whole_trail(tmp_path) -> None:
    """SQLite keeps no statistics: the embedded default must still list and count failures by their index."""
    store = Store.open(f"sqlite:///{tmp_path / 'connector.db'}")
    try:
        connection_id = store.connections.create(name="History Ltd", xero_tenant_id="tenant-h").id
        store.audit.record_many([dict(connection_id=connection_id, record_type="invoice", record_id=f"x-{n}",
                                      stage=WRITTEN) for n in range(500)])
        store.audit.record(connection_id=connection_id, record_type="invoice", record_id="x-1", stage=FAILED)

        def listings():
            entries = store.audit.failures(connection_id, 200)
            store.audit.failures(None, 200)
            store.audit.failure_counts(connection_id, NOW - timedelta(days=3650))
            store.audit.attempts(entries)

        statements = statements_of(store, listings)
        assert len(statements) == 4
        with store.engine.connect() as conn:
            for statement, parameters in statements:
                plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                assert not [step for step in plan if step.startswith("SCAN audit_events") and "INDEX" not in step], (
                    statement, plan)
    finally:
        store.close()


def test_the_hourly_chart_counts_read_the_audit_trail_through_the_created_at_index(history_store) -> None:
    """The Connections page's charts: one grouped query, bounded in time, on ix_audit_events_created_at."""
    store, _ = history_store
    plans = plans_of_statements(store, lambda: store.audit.hourly_counts((WRITTEN, FAILED),
                                                                        since=NOW - timedelta(hours=2)))
    [(statement, nodes)] = plans
    assert not [n for n in nodes if n.startswith("Seq Scan audit_events")], f"{statement}\n-> {nodes}"
    assert any("ix_audit_events_created_at" in n for n in nodes), f"{statement}\n-> {nodes}"


def test_the_record_search_reads_snapshots_only_through_its_search_indexes(history_store, pg_database_url) -> None:
    """The console's search on an organisation of 20,000 contacts and 40,000 invoices: by number, email and a
    part of a name (pg_trgm), and by a name's prefix where the trigram index is missing, each an index read."""
    store, connection_id = history_store
    with psycopg.connect(pg_database_url) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY xero_snapshots (connection_id, resource, xero_id, search_email, search_name, "
                          "source_updated_at, payload, fetched_at) FROM STDIN") as copy:
                for n in range(20_000):
                    copy.write_row((connection_id, "contacts", f"c-{n}", f"ap{n}@x.example", f"customer {n} ltd",
                                    NOW, '{"ContactID": "c"}', NOW))
            cur.execute("UPDATE xero_snapshots SET search_number = 'inv-' || substr(xero_id, 3)"
                        " WHERE resource = 'invoices'")
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE xero_snapshots")

    def searches():
        assert [s.xero_id for s in store.snapshots.search("INV-123", connection_ids=[connection_id])] == ["x-123"]
        assert [s.xero_id for s in store.snapshots.search("AP77@x.example", connection_ids=[connection_id])] == ["c-77"]
        assert [s.xero_id for s in store.snapshots.search("mer 12345 l", connection_ids=[connection_id])] == ["c-12345"]
        assert store.snapshots.search("nobody at all", connection_ids=[connection_id]) == []

    searched = [(statement, nodes) for statement, nodes in plans_of_statements(store, searches)
                if "search_" in statement.split("WHERE", 1)[-1]]
    assert len(searched) == 12  # number, email, name: for each of the four searches
    for statement, nodes in searched:
        assert not [n for n in nodes if n.startswith("Seq Scan xero_snapshots")], f"{statement}\n-> {nodes}"
        condition = statement.split("WHERE", 1)[1]
        column = next(c for c in ("search_number", "search_email", "search_name") if f"xero_snapshots.{c}" in condition)
        index = {"search_number": "ix_xero_snapshots_search_number", "search_email": "ix_xero_snapshots_search_email",
                 "search_name": "ix_xero_snapshots_search_name_trgm"}[column]
        assert any(index in n for n in nodes), f"{statement}\n-> {nodes}"

    # Without pg_trgm's index (the extension could not be created): a prefix, on the text_pattern_ops btree.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_xero_snapshots_search_name_trgm")
    fallback = Store(store.engine)
    assert [s.xero_id for s in fallback.snapshots.search("Customer 12345", connection_ids=[connection_id])] == [
        "c-12345"]
    assert fallback.snapshots.search("mer 12345", connection_ids=[connection_id]) == []
    [(statement, nodes)] = [(s, n) for s, n in plans_of_statements(
        store, lambda: fallback.snapshots.search("customer 1", connection_ids=[connection_id]))
        if "search_name" in s.split("WHERE", 1)[-1]]
    assert not [n for n in nodes if n.startswith("Seq Scan xero_snapshots")], f"{statement}\n-> {nodes}"
    assert any(n.endswith(" ix_xero_snapshots_search_name") for n in nodes), f"{statement}\n-> {nodes}"
