"""The budget bench's real run: the connector's own tasks, receiver and whole beat schedule against the Xero and
Zoho sandboxes, on a ManualClock (nothing waits on a wall clock).

One organisation on Xero's Starter tier (1,000 calls a day) per run, on the embedded stand-ins for the database
(SQLite) and broker (in-process), and on a redis-server of the run's own (bench/support/own_redis.py; fakeredis
when there is none). Every message a task or the receiver publishes is caught (Celery's before_task_publish) and
run in this process as a worker would, once the simulated clock reaches its countdown. Changes are made in the
Xero sandbox at their simulated times; the sandbox POSTs its signed webhooks to the real receiver, served over
HTTP, 1 to 5 s later (Xero does not publish its delivery latency: UNVERIFIED, a real org would have to be timed).

The clock goes straight from one due thing to the next: a change, a webhook delivery, a queued message's
countdown, or a beat entry. Every entry of the beat schedule (celeryconfig.settings_config) runs at its time,
interval entries every interval from the start and crontab entries at their minute and hour; nothing is skipped
for being idle, and every decision is the real code's. Modes:

- planner: the beat schedule as it is (``connector.plan_xero_polls`` every 60 s, the daily sweep crontab, ...);
- fixed_beat: the same with ``plan_xero_polls`` swapped for ``poll_xero_connections`` every 300 s, the beat before
  the planner. Today's poll task asks the planner for every page, so this is the old beat under today's budget
  (its polls capped at the 10 % share), not the unbounded naive schedule: only the bench's model runs that.

Measured, from the sandboxes' request logs and the connector's audit trail, all on the simulated clock:
Xero calls (answered, /api.xro/2.0) per UTC day and the 429s; egress from the budget ledger; Zoho API credits
(one per /crm/ call: https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html charges 1 credit a call
except for the APIs it lists, of which the connector uses none); the delay from each change in Xero to its
record's first ``written``/``skipped`` audit row after it (a payment: its invoice's); webhook flushes the
governor denied, polls the planner deferred, and the work parked at the end (by reason). A change neither in
Zoho nor parked by the end is counted as lost. The connector's log goes to a file, not to stdout.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from celery.schedules import crontab
from celery.signals import before_task_publish

from connector.clock import ManualClock
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.store import Store
from connector.store import audit as stages

API = "/api.xro/2.0"
DAY, HOUR = 86400, 3600
START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday
STARTER = 1000
FIXED_BEAT = 300.0
RECORD_TYPES = {"invoices": "invoice", "payments": "invoice", "contacts": "contact"}


class Queue:
    """Task messages as the broker would hold them, in order of their due time (then of publishing)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.heap: list[tuple[float, int, str, list, dict, int]] = []
        self.order = itertools.count()

    def record(self, sender=None, body=None, headers=None, **_) -> None:
        args, kwargs, _embed = body
        eta = headers.get("eta")
        # Celery turns a countdown into an eta on the wall clock: keep the countdown, on the simulated one.
        countdown = max(datetime.fromisoformat(eta).timestamp() - time.time(), 0.0) if eta else 0.0
        heapq.heappush(self.heap, (self.clock.time() + countdown, next(self.order), sender, list(args), dict(kwargs),
                                   int(headers.get("retries") or 0)))

    def next_due(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def run_due(self, run, limit: int = 20000) -> None:
        ran = 0
        while self.heap and self.heap[0][0] <= self.clock.time():
            _due, _n, name, args, kwargs, retries = heapq.heappop(self.heap)
            run(name, args, kwargs, retries)  # a retry's count travels with its message, as on a broker
            ran += 1
            if ran > limit:
                raise RuntimeError("the queue never went quiet")


class Beat:
    """celery beat's schedule on the simulated clock: interval entries every interval from the start, crontab
    entries (minute and hour sets; these entries run every day) at their next matching minute."""

    def __init__(self, schedule: dict, start: float) -> None:
        self.entries = []
        for name, entry in schedule.items():
            self.entries.append([self._first(entry["schedule"], start), name, entry])

    @staticmethod
    def _next_cron(cron: crontab, after: float) -> float:
        moment = datetime.fromtimestamp(after, tz=timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        while not (moment.minute in cron.minute and moment.hour in cron.hour):
            moment += timedelta(minutes=1)
        return moment.timestamp()

    def _first(self, schedule, start: float) -> float:
        if isinstance(schedule, crontab):
            assert len(schedule.day_of_week) == 7 and len(schedule.day_of_month) == 31, "daily crontabs only"
            return self._next_cron(schedule, start - 1)
        return start + float(schedule)

    def next_due(self) -> float:
        return min(e[0] for e in self.entries)

    def run_due(self, now: float, run) -> None:
        for entry in sorted(self.entries, key=lambda e: e[0]):
            due, _name, spec = entry
            if due > now:
                continue
            run(spec["task"], list(spec.get("args", ())), dict(spec.get("kwargs", {})))
            schedule = spec["schedule"]
            entry[0] = self._next_cron(schedule, due) if isinstance(schedule, crontab) else due + float(schedule)


class Events(logging.Handler):
    """Counts of the connector's own log events the bench reports (the log itself goes to a file)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        name = str(record.msg).split(" ", 1)[0].split(":", 1)[0]
        if name == "xero.buffer.flushed":
            if getattr(record, "retry_after", None) is not None:
                self.counts["webhook_flushes_denied"] += 1
            self.counts["webhook_ids_parked"] += getattr(record, "parked", 0) or 0
        elif name in ("xero.poll.deferred", "budget.xero.deferred", "xero.poll.daily_budget_spent",
                      "xero.webhook.sequence_gap", "xero.flush.handed_on"):
            self.counts[name] += 1
        if record.levelno >= logging.ERROR:
            self.counts["errors_logged"] += 1


def changes_of_month(spec: dict, days: int, rng: random.Random) -> list[tuple[float, str]]:
    """Each working day's changes at random times between 08:00 and 18:00 UTC (none at weekends)."""
    changes = []
    for day in range(days):
        day_start = START.timestamp() + day * DAY
        if datetime.fromtimestamp(day_start, tz=timezone.utc).weekday() >= 5:
            continue
        changes += [(day_start + rng.uniform(8 * HOUR, 18 * HOUR), kind)
                    for kind in ("invoices", "payments", "contacts") for _ in range(spec[kind])]
    return sorted(changes)


def run_org(name: str, spec: dict, mode: str, days: int, seed: int, log_dir: Path | None = None,
            progress=None, progress_every: int = 1) -> dict:
    """One organisation's run; ``progress(days_done, figures)`` is called every ``progress_every`` simulated days."""
    import celeryconfig
    from bench.support.own_redis import own_redis
    from webhooks import create_app
    from webhooks.enqueue import celery_enqueuer
    from workers.app import app
    from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
    from workers.deps import configure

    import workers.backfill_tasks  # noqa: F401  (registers the tasks, as a worker's includes do)
    import workers.maintenance_tasks  # noqa: F401
    import workers.schedule_tasks  # noqa: F401
    import workers.xero_tasks  # noqa: F401
    import workers.zoho_tasks  # noqa: F401

    wall = time.perf_counter()
    rng = random.Random(seed)
    clock = ManualClock(START)
    xero, zoho = XeroSandbox(clock), ZohoSandbox(clock)
    xero_server, zoho_server = serve(xero, quiet=True), serve(zoho, quiet=True)
    queue = Queue(clock)
    events = Events()
    before_task_publish.connect(queue.record, weak=False)
    task_failures: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as data_dir:
        log_file = (log_dir or Path(data_dir)) / f"connector-{name}-{mode}.log"
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        saved = root.handlers[:], root.level, logging.getLogger("celery.app.trace").level
        root.handlers = [file_handler, events]
        root.setLevel(logging.INFO)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # Celery's "Task ... succeeded" line for each of the thousands of beat runs a day: most of the log's lines
        # and a good part of its cost; failures are still logged (and counted in task_failures).
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        redis_server = own_redis(Path(data_dir))
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        settings = embedded_settings(Path(data_dir), sandboxes)
        if redis_server is not None:
            from cryptography.fernet import Fernet

            from connector.settings import Secret

            # A real Redis is not the embedded mode: the vault wants its key ring named, as in production.
            settings = replace(settings, redis_url=redis_server.url,
                               vault_keys=Secret(f"bench:{Fernet.generate_key().decode()}"))
        deps = configure(settings, clock=clock)
        deps.store = Store.open(settings.database_url, clock=clock)
        deps.redis.flushdb()
        receiver = create_app(webhook_key=xero.webhook_key, enqueue=celery_enqueuer(app),
                              zoho_channels=deps.store.channels)
        receiver_server = serve(receiver, quiet=True)

        def run(task: str, args: list, kwargs: dict, retries: int = 0) -> None:
            result = app.tasks[task].apply(args=args, kwargs=kwargs, retries=retries)
            if result.failed():
                task_failures[task] += 1

        try:
            connection_id, tenant = connect_sandbox_tenant(deps, sandboxes, f"{name.title()} Ltd")
            xero.set_day_limit(tenant, STARTER)
            contacts = [xero.create_contact(tenant, Name=f"{name} customer {n}")["ContactID"]
                        for n in range(spec["contacts_on_file"])]
            line = [{"Description": "Consulting", "Quantity": 1, "UnitAmount": "100.00", "AccountCode": "200"}]
            open_invoices = [xero.create_invoice(tenant, rng.choice(contacts), line)["InvoiceID"]
                             for _ in range(spec["open"])]
            xero.webhooks.events.clear()  # the org as it was before the connector: its history raises nothing
            hook_url = f"{receiver_server.url}/webhooks/xero"
            schedule = dict(celeryconfig.settings_config(settings)["beat_schedule"])
            if mode == "fixed_beat":
                del schedule["xero-plan-polls"]
                schedule["xero-fixed-polls"] = {"task": "connector.poll_xero_connections", "schedule": FIXED_BEAT}
            beat = Beat(schedule, clock.time())
            changes = changes_of_month(spec, days, rng)
            deliveries: list[float] = []  # when the sandbox POSTs what it has pending
            made: list[tuple[float, str, str]] = []  # (changed at, kind, record id)
            end = START.timestamp() + days * DAY
            day_ends = [START.timestamp() + (d + 1) * DAY for d in range(days)]
            checkpoint = 0
            while True:
                upcoming = min(changes[0][0] if changes else math.inf, deliveries[0] if deliveries else math.inf,
                               queue.next_due(), beat.next_due())
                if upcoming >= end:
                    break
                if progress is not None and upcoming >= day_ends[checkpoint]:
                    clock.advance(max(day_ends[checkpoint] - clock.time(), 0.0))
                    checkpoint += 1
                    if checkpoint % progress_every == 0:
                        figures = summary(deps, connection_id, tenant, xero, zoho, made, day_ends[:checkpoint],
                                          checkpoint, events, task_failures)
                        figures["bench_seconds"] = round(time.perf_counter() - wall, 1)
                        progress(checkpoint, figures)
                    continue
                clock.advance(max(upcoming - clock.time(), 0.0))
                now = clock.time()
                while changes and changes[0][0] <= now:
                    at, kind = changes.pop(0)
                    if kind == "invoices":
                        invoice = xero.create_invoice(tenant, rng.choice(contacts), line)["InvoiceID"]
                        open_invoices.append(invoice)
                        made.append((at, kind, invoice))
                    elif kind == "payments" and open_invoices:
                        invoice = open_invoices.pop(rng.randrange(len(open_invoices)))
                        xero.add_payment(tenant, invoice, "100.00")
                        made.append((at, kind, invoice))
                    elif kind == "contacts":
                        contact = rng.choice(contacts)
                        xero.update_contact(tenant, contact, EmailAddress=f"a{rng.random():.6f}@example.com")
                        made.append((at, kind, contact))
                    heapq.heappush(deliveries, at + rng.uniform(1, 5))
                if deliveries and deliveries[0] <= now:
                    while deliveries and deliveries[0] <= now:
                        heapq.heappop(deliveries)
                    xero.deliver_webhooks(hook_url)
                beat.run_due(now, run)
                queue.run_due(run)
            clock.advance(max(end - clock.time(), 0.0))
            figures = summary(deps, connection_id, tenant, xero, zoho, made, day_ends, days, events, task_failures)
            figures["bench_seconds"] = round(time.perf_counter() - wall, 1)
            figures["log_file"] = str(log_file) if log_dir else "(removed with the run's temporary folder)"
            figures["redis"] = "own redis-server" if redis_server else "fakeredis (no redis-server on PATH)"
            return figures
        finally:
            before_task_publish.disconnect(queue.record)
            receiver_server.shutdown()
            xero_server.shutdown()
            zoho_server.shutdown()
            deps.store.close()
            if redis_server is not None:
                redis_server.stop()
            root.handlers = saved[0]
            root.setLevel(saved[1])
            logging.getLogger("celery.app.trace").setLevel(saved[2])
            file_handler.close()


def by_day(times: list[float], day_ends: list[float]) -> list[int]:
    counts = [0] * len(day_ends)
    start = day_ends[0] - DAY
    for t in times:
        day = int((t - start) // DAY)
        if 0 <= day < len(counts):
            counts[day] += 1
    return counts


def max_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted) inside any ``window`` seconds."""
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def pct(values: list[float], share: float):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(math.ceil(share * len(ordered))) - 1, len(ordered) - 1)], 1)


def written_times(deps, connection_id: int) -> tuple[dict[tuple[str, str], list[float]], dict[str, str]]:
    """When each record was written to Zoho (or found unchanged there), from its audit rows; and the records
    whose work is parked now, with the reason."""
    from sqlalchemy import create_engine, select

    from connector.store.tables import AuditEvent, ParkedWork

    engine = create_engine(deps.settings.database_url)
    statement = select(AuditEvent.record_type, AuditEvent.record_id, AuditEvent.created_at).where(
        AuditEvent.connection_id == connection_id, AuditEvent.stage.in_((stages.WRITTEN, stages.SKIPPED)))
    times: dict[tuple[str, str], list[float]] = {}
    with engine.connect() as db:
        for record_type, record_id, created_at in db.execute(statement):
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=timezone.utc)
            times.setdefault((record_type, record_id), []).append(created_at.timestamp())
        parked = dict(db.execute(select(ParkedWork.record_id, ParkedWork.reason).where(
            ParkedWork.connection_id == connection_id)).all())
    engine.dispose()
    return times, parked


def run_egress_bytes(ledger, connection_id: int, day_ends) -> int:
    """Egress of the whole run: the ledger keeps it per calendar month, and a month-long run from 2 March
    ends in April."""
    months = {datetime.fromtimestamp(end - 1, tz=timezone.utc).strftime("%Y-%m"): end - 1 for end in day_ends}
    return sum(ledger.egress_bytes_of_month(connection_id, at) for at in months.values())


def summary(deps, connection_id: int, tenant: str, xero, zoho, made, day_ends, days: int, events: Events,
            task_failures: Counter) -> dict:
    xero_log = xero.calls(path_prefix=API, tenant=tenant)
    calls_by_day = by_day([c.started for c in xero_log if c.status == 200], day_ends)
    # Scheduled work (polls, sweeps, checks, backfills) reads listed pages (order=...); webhook work fetches by
    # IDs= (credit notes by a where chain), and a single record by its id.
    scheduled = sorted(c.started for c in xero_log if c.status == 200 and "order=" in c.query)
    zoho_credits_by_day = by_day([c.started for c in zoho.calls(path_prefix="/crm/")], day_ends)
    delays: dict[str, list[float]] = {"invoices": [], "payments": [], "contacts": []}
    trails, parked_ids = written_times(deps, connection_id)
    lost, waiting_parked = Counter(), Counter()
    for at, kind, record_id in made:
        after = [t for t in trails.get((RECORD_TYPES[kind], record_id), ()) if t >= at]
        if after:
            delays[kind].append(min(after) - at)
        elif record_id in parked_ids:
            waiting_parked[f"{kind}: {parked_ids[record_id]}"] += 1
        else:
            lost[kind] += 1
    parked = {reason: n for reason, n in deps.store.parked.counts_by_reason(connection_id).items() if n}
    return {
        "xero_calls_per_day": {"mean": round(sum(calls_by_day) / days, 1), "max": max(calls_by_day),
                               "by_day": calls_by_day},
        "scheduled_calls_max_in_24h": max_in_window(scheduled, DAY),
        "xero_429s": sum(1 for c in xero_log if c.status == 429),
        "xero_statuses": dict(Counter(c.status for c in xero_log)),
        "egress_mb_per_month": round(run_egress_bytes(deps.budget_ledger, connection_id, day_ends) / 1e6 * 30 / days, 2),
        "zoho_credits_per_day": {"mean": round(sum(zoho_credits_by_day) / days, 1), "max": max(zoho_credits_by_day)},
        "changes": dict(Counter(kind for _, kind, _ in made)),
        "delay_seconds": {kind: {"p50": pct(v, 0.50), "p95": pct(v, 0.95), "max": round(max(v), 1) if v else None,
                                 "in_zoho": len(v)} for kind, v in delays.items()},
        # a change not in Zoho by the end: its record's work parked (shown, with the reason), or neither (lost,
        # or still waiting for a poll the planner deferred)
        "not_in_zoho_at_end": dict(lost),
        "not_in_zoho_parked": dict(waiting_parked),
        "parked_at_end": parked,
        "webhook_flushes_denied": events.counts["webhook_flushes_denied"],
        "webhook_ids_parked": events.counts["webhook_ids_parked"],
        "scheduled_deferred": events.counts["budget.xero.deferred"],  # the planner's; the poll logs each again
        "events": dict(events.counts),
        "task_failures": dict(task_failures),
        "xero_calls_by_purpose_last_24h": deps.budget_ledger.calls_by_purpose(connection_id),
        # the limit the ledger learned from X-DayLimit-Remaining (the sandbox's is 1,000): the planner's share follows it
        "day_limit_learned": deps.budget_ledger.limit_state(connection_id).__dict__,
    }
