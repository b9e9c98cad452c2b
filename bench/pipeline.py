"""End-to-end throughput: Xero webhook events through the real receiver, workers, broker and database.

The receiver runs under gunicorn and the workers as prefork `celery worker` processes, both with
the Procfile's command lines; the broker is a real Redis, the store a throwaway PostgreSQL
database, and the Xero and Zoho sandboxes run in their own process with their limits relaxed
and no latency, so what is measured is the connector's own overhead. Every figure comes from
outside the code under test: latency from the audit trail (webhook received -> Zoho write
acknowledged, per sync id), database transactions from ``pg_stat_database``, RSS from /proc.

Runs, in one invocation, on the same sandboxes:
  pipeline  the connector as configured for production;
  naive     one task per event, one fetch and one write per record (bench/support/naive.py);
  history   the pipeline again, on a database already holding 200,000 id links and
            1,000,000 audit rows (the cost per record must not grow with the data).

    .venv/bin/python bench/pipeline.py [--events 20000] [--naive-events 2000] [--no-history]

Environment: BENCH_EVENTS / BENCH_NAIVE_EVENTS override the counts; TEST_REDIS_PORT (or
BENCH_REDIS_PORT) picks the Redis server (database 9 is flushed), BENCH_PG_ADMIN_URL the
PostgreSQL server. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.system import (  # noqa: E402
    CpuMeter, RssSampler, Sandboxes, flush_redis, redis_url, run_each, start_receiver, start_worker, throwaway_database,
    wait_for_progress,
)
from connector import queues  # noqa: E402
from connector.store.vault import Vault  # noqa: E402
from webhooks.signatures import xero_signature  # noqa: E402

EVENTS_PER_POST = 20  # Xero batches several events into one POST (https://developer.xero.com/documentation/webhooks/overview)
DELIVERY_THREADS = 4
TERMINAL = ("written", "skipped", "failed")
HISTORY_LINKS = 200_000
HISTORY_AUDIT_ROWS = 1_000_000


def worker_work_left() -> list[str]:
    """What the worker still has to do: tasks queued or held (acks_late keeps a task, and a countdown's,
    in ``unacked`` until it ends) and ids waiting in the Zoho buffer for their Account figures."""
    import redis

    client = redis.Redis.from_url(redis_url())
    left = [k.decode() for k in client.scan_iter(match="zoho:push:*account_figures*")]
    left += [q for q in (queues.XERO_QUEUE, queues.ZOHO_QUEUE) if client.llen(q)]
    left += ["unacked"] * client.hlen("unacked")
    return left

def tenant_spec(name: str, events: int) -> str:
    contacts = max(1, events // 10)
    return f"{name}:{contacts}:{events - contacts}"


def process_env(facts: dict, database_url: str, data_dir: Path, vault_keys: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url(), "CELERY_BROKER_URL": redis_url(),
        "CONNECTOR_DATA_DIR": str(data_dir), "CONNECTOR_VAULT_KEYS": vault_keys,
        "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:8000",
        "XERO_CLIENT_ID": facts["xero_client_id"], "XERO_CLIENT_SECRET": facts["xero_client_secret"],
        "XERO_WEBHOOK_KEY": facts["xero_webhook_key"], "XERO_API_URL": facts["xero_url"],
        "XERO_IDENTITY_URL": facts["xero_url"], "XERO_LOGIN_URL": facts["xero_url"],
        "ZOHO_CLIENT_ID": facts["zoho_client_id"], "ZOHO_CLIENT_SECRET": facts["zoho_client_secret"],
        "ZOHO_ACCOUNTS_URL": facts["zoho_url"],
        # The sandboxes' limits are relaxed; our own governor must not stand in for them.
        "XERO_MINUTE_LIMIT": "1000000", "XERO_CONCURRENT_LIMIT": "1000",
    }


def connect_tenant(env: dict[str, str], tenant: dict) -> int:
    """Create the connection and store its tokens, as `connector connect` does after consent."""
    from connector.clock import SYSTEM_CLOCK
    from connector.secret import Secret
    from connector.settings import Settings
    from connector.store.credentials import TokenSet
    from workers.deps import configure

    deps = configure(Settings.from_env(env))
    connection = deps.store.connections.create(name="Bench Ltd", xero_tenant_id=tenant["tenant_id"],
                                               xero_daily_limit=10**9)
    now = SYSTEM_CLOCK.now()
    deps.credentials.save(connection.id, "xero", TokenSet(
        access_token=Secret(tenant["xero_access_token"]), refresh_token=Secret(tenant["xero_refresh_token"]),
        expires_at=now + timedelta(seconds=int(tenant["xero_expires_in"])), scope=tenant["xero_scope"]))
    deps.credentials.save(connection.id, "zoho", TokenSet(
        access_token=Secret(""), refresh_token=Secret(tenant["zoho_refresh_token"]), expires_at=now))
    deps.store.close()
    return connection.id


def seed_history(database_url: str, connection_id: int, *, links: int, audit_rows: int) -> float:
    """An organisation's history written straight into the tables with COPY; returns seconds taken."""
    import psycopg

    started = time.monotonic()
    now = datetime.now(timezone.utc)
    kinds = ("contact", "contact_person", "invoice", "invoice_lines")
    modules = {"contact": "Accounts", "contact_person": "Contacts", "invoice": "Invoices", "invoice_lines": "Invoices"}
    stages = ("received", "fetched", "mapped", "written")
    with psycopg.connect(database_url) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY id_links (connection_id, kind, xero_id, zoho_module, zoho_id, content_hash, "
                          "source_updated_at, updated_at) FROM STDIN") as copy:
                for n in range(links):
                    kind = kinds[n % 4]
                    copy.write_row((connection_id, kind, f"hist-{n // 4:08d}", modules[kind], str(9 * 10**18 + n),
                                    f"{n:064x}", now - timedelta(days=400), now - timedelta(days=400)))
            with cur.copy("COPY audit_events (connection_id, sync_id, direction, record_type, record_id, stage, "
                          "detail, task_id, created_at) FROM STDIN") as copy:
                for n in range(audit_rows):
                    copy.write_row((connection_id, f"{n // 4:032x}", "xero_to_zoho",
                                    "invoice" if n % 8 < 6 else "contact", f"hist-{n // 20:08d}", stages[n % 4],
                                    '{"seeded": true}', None, now - timedelta(days=30, seconds=n)))
        conn.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")  # as autovacuum would soon after a bulk load
    return time.monotonic() - started


class DatabaseProbe:
    """Reads pg_stat_database and the audit trail; counts its own transactions to leave them out."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(database_url, autocommit=True)
        # The probe's own reads go by index (the audit table's statistics lag its growth): it must not
        # load the database it measures with scans of its own.
        self.conn.execute("SET enable_seqscan = off")
        self.name = database_url.rsplit("/", 1)[1]
        self.own_transactions = 0

    def query(self, sql: str, params: tuple = ()):
        self.own_transactions += 1
        return self.conn.execute(sql, params).fetchall()

    def transactions(self) -> int:
        self.query("SELECT pg_stat_clear_snapshot()")
        rows = self.query("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                          (self.name,))
        return int(rows[0][0])

    def start(self) -> None:
        """Only audit rows from now on count towards ``finished``."""
        self.cursor = self.first = int(self.query("SELECT coalesce(max(id), 0) FROM audit_events")[0][0])
        self.received: set[str] = set()
        self.terminal: set[str] = set()

    def finished(self) -> int:
        """Records whose trip (the sync id of its received row) reached a terminal stage.

        Reads only the rows added since the last look, by primary key (cheap however large the
        table), going a little way back each time for rows whose transaction committed late.
        """
        # The LIMIT keeps the planner on the primary key even when the table's statistics are stale.
        rows = self.query("SELECT id, sync_id, stage FROM audit_events WHERE id > %s ORDER BY id LIMIT 100000",
                          (max(self.cursor - 5000, self.first),))
        for row_id, sync_id, stage in rows:
            if stage == "received":
                self.received.add(sync_id)
            elif stage in TERMINAL:
                self.terminal.add(sync_id)
            self.cursor = max(self.cursor, row_id)
        return len(self.received & self.terminal)

    def latencies(self, since: datetime) -> dict:
        # One pass grouped by trip, no join: with statistics from before the run the planner expected
        # no rows since ``since`` and joined two such groupings by nested loop (on the seeded
        # database, tens of seconds of the server's CPU for 20,000 records).
        rows = self.query(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t1 - t0)), "
            "       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM t1 - t0)), max(t1) "
            "FROM (SELECT min(created_at) FILTER (WHERE stage = 'received') AS t0, "
            "             min(created_at) FILTER (WHERE stage IN ('written', 'skipped')) AS t1 "
            "      FROM audit_events WHERE created_at >= %s GROUP BY sync_id) AS trips "
            "WHERE t0 IS NOT NULL AND t1 IS NOT NULL", (since,))
        synced, p50, p99, last = rows[0]
        failed = self.query("SELECT count(DISTINCT sync_id) FROM audit_events WHERE stage = 'failed' "
                            "AND created_at >= %s", (since,))[0][0]
        return {"synced": int(synced), "failed": int(failed), "p50": float(p50 or 0), "p99": float(p99 or 0),
                "last": last}

    def index_reads(self) -> dict[str, int]:
        """Index entries read per index during the run (pg_stat_user_indexes), largest first."""
        self.query("SELECT pg_stat_clear_snapshot()")
        rows = self.query("SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes WHERE idx_tup_read > 0 "
                          "ORDER BY idx_tup_read DESC LIMIT 8")
        return {name: int(reads) for name, reads in rows}

    def seq_scans(self) -> dict[str, int]:
        rows = self.query("SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE seq_tup_read > 0 "
                          "ORDER BY seq_tup_read DESC LIMIT 8")
        return {name: int(reads) for name, reads in rows}

    def close(self) -> None:
        self.conn.close()


def deliver(url: str, events: list[dict], key: str) -> list[int]:
    bodies = []
    for start in range(0, len(events), EVENTS_PER_POST):
        body = json.dumps({"events": events[start:start + EVENTS_PER_POST], "firstEventSequence": start + 1,
                           "lastEventSequence": start + EVENTS_PER_POST, "entropy": "BENCH"}).encode()
        bodies.append(body)
    local = threading.local()

    def post(body: bytes) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.post(url, data=body, timeout=30, headers={
            "Content-Type": "application/json; charset=utf-8", "x-xero-signature": xero_signature(body, key)}
        ).status_code

    with ThreadPoolExecutor(DELIVERY_THREADS) as pool:
        return list(pool.map(post, bodies))


def run(name: str, facts: dict, tenant: dict, *, worker_app: str, workdir: Path, history: bool = False,
        timeout: float, stall_after: float, profile: str | None = None) -> dict:
    events = tenant["events"]
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    flush_redis()
    with throwaway_database() as database_url:
        env = process_env(facts, database_url, data_dir, Vault.generate_keyring("bench"))
        connection_id = connect_tenant(env, tenant)
        seeded = {}
        if history:
            seconds = seed_history(database_url, connection_id, links=HISTORY_LINKS, audit_rows=HISTORY_AUDIT_ROWS)
            seeded = {"seeded_id_links": HISTORY_LINKS, "seeded_audit_rows": HISTORY_AUDIT_ROWS,
                      "seed_seconds": round(seconds, 1)}
        receiver, receiver_url = start_receiver(env, workdir)
        worker = start_worker(env, workdir, app=worker_app, name=name)
        probe = DatabaseProbe(database_url)
        profiler = None
        try:
            time.sleep(2.0)  # idle backends report their statistics within a second
            before = probe.transactions()
            index_before, seq_before = probe.index_reads(), probe.seq_scans()
            own_before = probe.own_transactions
            if profile:
                import subprocess

                profiler = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "--idle", "-r", "50",
                     "-f", "speedscope" if profile.endswith(".json") else "flamegraph", "-o", profile,
                     "-p", str(worker.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            probe.start()
            started = datetime.now(timezone.utc)
            cpu = CpuMeter({"worker": worker.process.pid, "receiver": receiver.process.pid,
                            "sandboxes": facts["pid"]}, database_url)
            with RssSampler(worker.process.pid) as rss, cpu:
                statuses = deliver(f"{receiver_url}/webhooks/xero", events, facts["xero_webhook_key"])
                delivered = (datetime.now(timezone.utc) - started).total_seconds()
                def step() -> tuple[bool, int]:
                    finished = probe.finished()
                    return finished >= len(events), finished

                wait_for_progress(step, worker=worker, timeout=timeout, stall_after=stall_after,
                                  what=f"{len(events)} records to sync ({name})")
                # The work the records left behind counts too: Account figures gathered in the Zoho buffer
                # are written a window later, so the CPU meter runs until no task or buffered id remains.
                wait_for_progress(lambda: (not (waiting := worker_work_left()), -len(waiting)), worker=worker,
                                  timeout=timeout, stall_after=stall_after, what=f"the deferred work to end ({name})",
                                  interval=0.2)
                settled = (datetime.now(timezone.utc) - started).total_seconds()
            if profiler is not None:
                profiler.send_signal(2)
                profiler.wait(timeout=60)
        finally:
            worker.stop()
            receiver.stop()
        time.sleep(1.5)  # the stopped processes' last statistics
        transactions = probe.transactions() - before - (probe.own_transactions - own_before)
        index_reads = {k: v - index_before.get(k, 0) for k, v in probe.index_reads().items()}
        seq_reads = {k: v - seq_before.get(k, 0) for k, v in probe.seq_scans().items()}
        figures = probe.latencies(started)
        probe.close()
    elapsed = (figures["last"] - started).total_seconds() if figures["last"] else float("nan")
    return {
        "events": len(events),
        "records": figures["synced"],
        "failed": figures["failed"],
        "records_per_s": round(figures["synced"] / elapsed, 1),
        "p50_latency_ms": round(figures["p50"] * 1000),
        "p99_latency_ms": round(figures["p99"] * 1000),
        "db_transactions_per_record": round(transactions / max(figures["synced"], 1), 2),
        "peak_worker_rss_mb": round(rss.peak_mb, 1),
        # CPU per record by process group (the database's backends included): steadier than the rate
        # on a shared machine, so the history run's cost per record compares with the empty run's.
        "cpu_ms_per_record": {k: round(1000 * v / max(figures["synced"], 1), 2) for k, v in cpu.seconds().items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],  # how much else the machine was running
        "seconds": round(elapsed, 1),
        "delivery_seconds": round(delivered, 1),
        "settled_seconds": round(settled, 1),  # until the deferred work (Account figures) was done too
        "non_2xx": sum(1 for s in statuses if not 200 <= s < 300),
        **seeded,
        # Where the database's reads went (the bench's own completion checks included).
        "index_entries_read": {k: v for k, v in index_reads.items() if v > 0},
        "seq_tuples_read": {k: v for k, v in seq_reads.items() if v > 0},
    }


def main(argv: list[str] | None = None) -> int:
    # A terminated benchmark still stops the processes it started (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 20_000)))
    parser.add_argument("--naive-events", type=int, default=int(os.environ.get("BENCH_NAIVE_EVENTS", 2_000)))
    parser.add_argument("--lines", type=int, default=5, help="lines per invoice")
    parser.add_argument("--no-history", action="store_true", help="skip the run on a seeded database")
    parser.add_argument("--only", choices=["pipeline", "naive", "history"], action="append", default=None)
    parser.add_argument("--profile", default=None, metavar="PREFIX",
                        help="record the worker with py-spy into PREFIX-<run>.svg (or .json: speedscope)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--stall-after", type=float, default=120.0,
                        help="fail when no record finishes for this many seconds")
    args = parser.parse_args(argv)

    runs = args.only or ["pipeline", "naive"] + ([] if args.no_history else ["history"])
    tenants = {"pipeline": args.events, "history": args.events, "naive": args.naive_events}
    workdir = Path(tempfile.mkdtemp(prefix="mlc-bench-"))
    started = time.monotonic()
    sandboxes = Sandboxes([tenant_spec(r, tenants[r]) for r in runs], lines=args.lines, workdir=workdir)
    print(f"sandboxes seeded in {time.monotonic() - started:.1f} s; logs in {workdir}", flush=True)

    def run_one(name: str) -> dict:
        profile = None
        if args.profile:
            suffix = ".json" if args.profile.endswith(".json") else ".svg"
            profile = f"{args.profile.removesuffix('.json').removesuffix('.svg')}-{name}{suffix}"
        return run(name, sandboxes.facts, sandboxes.facts["tenants"][name],
                   worker_app="bench.support.naive" if name == "naive" else "workers.app",
                   workdir=workdir, history=name == "history", timeout=args.timeout,
                   stall_after=args.stall_after, profile=profile)

    results = run_each(runs, sandboxes, run_one)
    figures = dict(results.get("pipeline") or results[runs[0]])
    if "naive" in results and "pipeline" in results:
        figures["naive"] = results["naive"]
        figures["speedup_vs_naive"] = round(results["pipeline"]["records_per_s"] /
                                            max(results["naive"]["records_per_s"], 0.001), 2)
    if "history" in results and "pipeline" in results:
        figures["history"] = results["history"]
        figures["history_vs_empty"] = round(results["history"]["records_per_s"] /
                                            max(results["pipeline"]["records_per_s"], 0.001), 3)
    figures["machine"] = {"cpus": os.cpu_count(), "worker": "Procfile (prefork)", "receiver": "Procfile (gunicorn)"}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
