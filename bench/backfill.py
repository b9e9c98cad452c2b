"""Backfill memory: a full import of a large Xero organisation, and the worker's RSS as it grows.

`connector backfill CONNECTION --detach` queues the import as it does in production; a prefork
`celery worker` with the Procfile's command line runs it (one page per task, each page handed on
to Zoho), on the real Redis broker and a throwaway PostgreSQL database, against the Xero and Zoho
sandboxes in their own process with their limits relaxed and no latency. The org is seeded with
realistic contacts and invoices of 1-5 lines (connector/sandbox/xero_seed.py).

Every figure comes from outside the code under test: records imported from the audit trail
(a record counts once its trip reached Zoho: written, skipped or failed), records listed from the
checkpoint table, RSS of the worker's processes from /proc (the largest one, sampled). At every
fifth of the org the peak RSS so far is noted: a streaming import holds one page at a time, so the
peak at the end must be within 10 % of the peak at the first fifth.

In the same invocation, *naive* imports a smaller org (bench/support/naive_backfill.py): every
page listed into memory first, then everything written and handed on; its RSS is noted at every
fifth of its listing.

    .venv/bin/python bench/backfill.py [--records 100000] [--naive-records 20000]

Environment: BENCH_BACKFILL_RECORDS / BENCH_NAIVE_BACKFILL_RECORDS override the counts;
TEST_REDIS_PORT (or BENCH_REDIS_PORT) picks the Redis server (database 9 is flushed),
BENCH_PG_ADMIN_URL the PostgreSQL server. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import DatabaseProbe, connect_tenant, process_env  # noqa: E402
from bench.support.system import (  # noqa: E402
    BIN, ROOT, RssSampler, Sandboxes, flush_redis, run_each, start_worker, throwaway_database, wait_for,
    wait_for_progress,
)
from connector.store.vault import Vault  # noqa: E402

CHECKPOINTS = 5  # RSS is noted after every fifth of the org
CONTACT_SHARE = 10  # one record in ten is a contact, the rest invoices


def org_spec(name: str, records: int) -> str:
    contacts = max(1, records // CONTACT_SHARE)
    return f"{name}:{contacts}:{records - contacts}"


def listed(probe: DatabaseProbe) -> tuple[int, bool]:
    """Records the backfill listed and stored so far, and whether every resource is done."""
    rows = probe.query("SELECT coalesce(sum(records), 0), bool_and(state = 'done') FROM backfill_checkpoints")
    return int(rows[0][0]), bool(rows[0][1])


def run(name: str, facts: dict, tenant: dict, *, records: int, worker_app: str, workdir: Path,
        timeout: float, stall_after: float) -> dict:
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    flush_redis()
    thresholds = [records * (n + 1) // CHECKPOINTS for n in range(CHECKPOINTS)]
    with throwaway_database() as database_url:
        env = process_env(facts, database_url, data_dir, Vault.generate_keyring("bench"))
        connection_id = connect_tenant(env, tenant)
        worker = start_worker(env, workdir, app=worker_app, name=name)
        probe = DatabaseProbe(database_url)
        by_imported: dict[int, float] = {}
        by_listed: dict[int, float] = {}
        try:
            time.sleep(2.0)  # idle backends report their statistics within a second
            before, own_before = probe.transactions(), probe.own_transactions
            probe.start()
            with RssSampler(worker.process.pid, interval=0.2) as rss:
                idle_mb = rss_now(rss)
                started = time.monotonic()
                subprocess.run([str(BIN / "connector"), "backfill", str(connection_id), "--detach"], cwd=ROOT,
                               env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)

                def progress() -> tuple[bool, int]:
                    count, done = listed(probe)
                    imported = probe.finished()
                    for threshold in thresholds:
                        if count >= threshold:
                            by_listed.setdefault(threshold, rss.peak_mb)
                        if imported >= threshold:
                            by_imported.setdefault(threshold, rss.peak_mb)
                    return done and imported >= count, count + imported

                wait_for_progress(progress, worker=worker, timeout=timeout, stall_after=stall_after, interval=0.5,
                                  what=f"the {name} import of {records} records")
                seconds = time.monotonic() - started
        finally:
            worker.stop()
        time.sleep(1.5)  # the stopped processes' last statistics
        transactions = probe.transactions() - before - (probe.own_transactions - own_before)
        count, _ = listed(probe)
        failed = probe.query("SELECT count(DISTINCT sync_id) FROM audit_events WHERE stage = 'failed'")[0][0]
        probe.close()
    first, last = thresholds[0], thresholds[-1]
    return {
        "records": count,
        "failed": int(failed),
        "seconds": round(seconds, 1),
        "records_per_s": round(count / seconds, 1),
        "db_transactions_per_record": round(transactions / max(count, 1), 2),
        "idle_rss_mb": round(idle_mb, 1),
        "peak_rss_mb": round(rss.peak_mb, 1),
        # Peak RSS of any worker process up to the moment that many records had reached Zoho / been listed.
        "rss_mb_at": {str(k): round(v, 1) for k, v in sorted(by_imported.items())},
        "rss_mb_at_listed": {str(k): round(v, 1) for k, v in sorted(by_listed.items())},
        f"rss_growth_{first // 1000}k_to_{last // 1000}k": growth(by_imported, first, last),
        "rss_growth_listed": growth(by_listed, first, last),
        # What each further 1,000 records cost in peak RSS, from the first to the last fifth listed.
        "rss_mb_per_1000_records": round((by_listed[last] - by_listed[first]) / (last - first) * 1000, 2)
        if first in by_listed and last in by_listed and last > first else None,
    }


def growth(rss_at: dict[int, float], first: int, last: int) -> float | None:
    return round(rss_at[last] / rss_at[first], 3) if first in rss_at and last in rss_at else None


def rss_now(rss: RssSampler) -> float:
    wait_for(lambda: bool(rss.samples), timeout=10, what="a first RSS sample")
    return rss.samples[-1][1]


def main(argv: list[str] | None = None) -> int:
    # A terminated benchmark still stops the processes it started (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=int(os.environ.get("BENCH_BACKFILL_RECORDS", 100_000)))
    parser.add_argument("--naive-records", type=int,
                        default=int(os.environ.get("BENCH_NAIVE_BACKFILL_RECORDS", 20_000)))
    parser.add_argument("--only", choices=["backfill", "naive"], action="append", default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--stall-after", type=float, default=120.0,
                        help="fail when no record is listed or imported for this many seconds")
    args = parser.parse_args(argv)

    runs = args.only or ["backfill", "naive"]
    sizes = {"backfill": args.records, "naive": args.naive_records}
    workdir = Path(tempfile.mkdtemp(prefix="mlc-bench-backfill-"))
    started = time.monotonic()
    sandboxes = Sandboxes([], lines=0, workdir=workdir, orgs=[org_spec(r, sizes[r]) for r in runs])
    print(f"sandboxes seeded in {time.monotonic() - started:.1f} s; logs in {workdir}", flush=True)
    results = run_each(runs, sandboxes, lambda name: run(
        name, sandboxes.facts, sandboxes.facts["tenants"][name], records=sizes[name],
        worker_app="bench.support.naive_backfill" if name == "naive" else "workers.app",
        workdir=workdir, timeout=args.timeout, stall_after=args.stall_after))
    figures = dict(results.get("backfill") or results[runs[0]])
    if "naive" in results and "backfill" in results:
        figures["naive"] = results["naive"]
        # The naive import holds every record until the last page: at the full size it would peak near this.
        naive = results["naive"]
        if naive["rss_mb_per_1000_records"] is not None:
            figures["naive_peak_rss_mb_estimated_at_full_size"] = round(
                naive["peak_rss_mb"] + naive["rss_mb_per_1000_records"] * (args.records - naive["records"]) / 1000)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    figures["machine"] = {"cpus": os.cpu_count(), "worker": "Procfile (prefork)"}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
