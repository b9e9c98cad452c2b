"""The budget bench's real run: the connector's own tasks, receiver and beat schedule against the Xero and Zoho
sandboxes, on a ManualClock (nothing waits on a wall clock).

One organisation on Xero's Starter tier (1,000 calls a day) per run, in the embedded mode (SQLite, fakeredis,
in-process broker). Every message a task or the receiver publishes is caught (Celery's before_task_publish) and
run in this process as a worker would, once the simulated clock reaches its countdown. Changes are made in the
Xero sandbox at their simulated times; the sandbox then POSTs its signed webhooks to the real receiver, served
over HTTP. The beat's entries are run at their times:

- planner: ``connector.plan_xero_polls`` every 60 s and the daily ``poll_xero_connections(full_sweep=True)``
  (as celeryconfig.py's beat schedule);
- fixed beat: ``poll_xero_connections`` every 300 s and the same daily sweep, the beat before the planner. Today's
  poll task asks the planner for every call, so this is the old beat under today's budget (its polls are capped at
  the 10 % share and wait), not the unbounded naive schedule: only the in-process model runs that.

Xero calls are counted from the sandbox's request log (answered ones, /api.xro/2.0 only), egress from the budget
ledger, Zoho calls from the Zoho sandbox's log (one credit per call is assumed: Zoho's credit weights are not
read back). CRM edits written back to Xero are not driven here (the in-process model covers them).
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

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


class Queue:
    """Task messages as the broker would hold them: (due, name, args, kwargs)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.messages: list[tuple[float, str, list, dict]] = []

    def record(self, sender=None, body=None, headers=None, **_) -> None:
        args, kwargs, _embed = body
        eta = headers.get("eta")
        # Celery turns a countdown into an eta on the wall clock: keep the countdown, on the simulated one.
        countdown = max(datetime.fromisoformat(eta).timestamp() - time.time(), 0.0) if eta else 0.0
        due = self.clock.time() + countdown
        self.messages.append((due, sender, list(args), dict(kwargs)))

    def run_due(self, app, limit: int = 5000) -> None:
        ran = 0
        while True:
            now = self.clock.time()
            due = [m for m in self.messages if m[0] <= now]
            if not due:
                return
            self.messages = [m for m in self.messages if m[0] > now]
            for _due, name, args, kwargs in due:
                app.tasks[name].apply(args=args, kwargs=kwargs)
                ran += 1
            if ran > limit:
                raise RuntimeError("the queue never went quiet")


def changes_of_day(spec: dict, day_start: float, rng: random.Random) -> list[tuple[float, str]]:
    """The day's changes at random times between 08:00 and 18:00 UTC, on working days only."""
    if datetime.fromtimestamp(day_start, tz=timezone.utc).weekday() >= 5:
        return []
    changes = [(day_start + rng.uniform(8 * HOUR, 18 * HOUR), kind)
               for kind in ("invoices", "payments", "contacts") for _ in range(spec[kind])]
    return sorted(changes)


def run_org(name: str, spec: dict, mode: str, days: int, seed: int) -> dict:
    from webhooks import create_app
    from webhooks.enqueue import celery_enqueuer
    from workers.app import app
    from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
    from workers.deps import configure

    import workers.schedule_tasks  # noqa: F401  (registers the tasks, as a worker's includes do)
    import workers.xero_tasks  # noqa: F401
    import workers.zoho_tasks  # noqa: F401

    rng = random.Random(seed)
    clock = ManualClock(START)
    xero, zoho = XeroSandbox(clock), ZohoSandbox()
    xero_server, zoho_server = serve(xero), serve(zoho)
    queue = Queue(clock)
    before_task_publish.connect(queue.record, weak=False)
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as data_dir:
        sandboxes = Sandboxes(xero, zoho, xero_server.url, zoho_server.url)
        settings = embedded_settings(Path(data_dir), sandboxes)
        deps = configure(settings, clock=clock)
        deps.store = Store.open(settings.database_url, clock=clock)
        deps.redis.flushdb()
        receiver = create_app(webhook_key=xero.webhook_key, enqueue=celery_enqueuer(app),
                              zoho_channels=deps.store.channels)
        receiver_server = serve(receiver)
        try:
            connection_id, tenant = connect_sandbox_tenant(deps, sandboxes, f"{name.title()} Ltd")
            xero.set_day_limit(tenant, STARTER)
            contacts = [xero.create_contact(tenant, Name=f"{name} customer {n}")["ContactID"]
                        for n in range(spec["contacts_on_file"])]
            line = [{"Description": "Consulting", "Quantity": 1, "UnitAmount": "100.00", "AccountCode": "200"}]
            open_invoices = [xero.create_invoice(tenant, rng.choice(contacts), line)["InvoiceID"]
                             for _ in range(spec["open"])]
            xero.webhooks.events.clear()  # the org as it was before the connector: its history raises nothing
            payments: list[tuple[float, str]] = []
            hook_url = f"{receiver_server.url}/webhooks/xero"
            beat = 60 if mode == "planner" else 300
            calls_by_day: list[int] = []
            for day in range(days):
                day_start = clock.time()
                changes = changes_of_day(spec, day_start, rng)
                answered_before = answered(xero, tenant)
                for tick in range(0, DAY, beat):
                    tick_end = day_start + tick + beat
                    while changes and changes[0][0] < tick_end:
                        at, kind = changes.pop(0)
                        clock.advance(max(at - clock.time(), 0))
                        if kind == "invoices":
                            open_invoices.append(xero.create_invoice(tenant, rng.choice(contacts), line)["InvoiceID"])
                        elif kind == "payments" and open_invoices:
                            invoice = open_invoices.pop(rng.randrange(len(open_invoices)))
                            xero.add_payment(tenant, invoice, "100.00")
                            payments.append((at, invoice))
                        elif kind == "contacts":
                            xero.update_contact(tenant, rng.choice(contacts), EmailAddress=f"a{rng.random():.6f}@example.com")
                        xero.deliver_webhooks(hook_url)
                        queue.run_due(app)
                    clock.advance(max(tick_end - clock.time(), 0))
                    if mode == "planner":
                        app.tasks["connector.plan_xero_polls"].apply()
                    else:
                        app.tasks["connector.poll_xero_connections"].apply()
                    if tick < settings.xero_sweep_hour * HOUR + 7 * 60 <= tick + beat:  # beat's hh:07 crontab
                        app.tasks["connector.poll_xero_connections"].apply(kwargs={"full_sweep": True})
                    queue.run_due(app)
                calls_by_day.append(answered(xero, tenant) - answered_before)
            return summary(deps, connection_id, calls_by_day, payments, days, zoho)
        finally:
            before_task_publish.disconnect(queue.record)
            receiver_server.shutdown()
            xero_server.shutdown()
            zoho_server.shutdown()
            deps.store.close()


def answered(xero: XeroSandbox, tenant: str) -> int:
    return len([c for c in xero.calls(path_prefix=API, tenant=tenant) if c.status == 200])


def payment_delays(deps, connection_id: int, payments: list[tuple[float, str]]) -> list[float]:
    """Seconds from a payment in Xero to its invoice's next write (or skip) on the Zoho side."""
    delays = []
    for paid_at, invoice in payments:
        after = [e.created_at.timestamp() for e in deps.store.audit.trail(connection_id, "invoice", invoice)
                 if e.stage in (stages.WRITTEN, stages.SKIPPED) and e.created_at.timestamp() >= paid_at]
        if after:
            delays.append(min(after) - paid_at)
    return delays


def summary(deps, connection_id: int, calls_by_day: list[int], payments, days: int, zoho) -> dict:
    delays = sorted(payment_delays(deps, connection_id, payments))

    def pct(share: float):
        return round(delays[min(int(share * len(delays)), len(delays) - 1)], 1) if delays else None

    return {
        "xero_calls_per_day": {"mean": round(sum(calls_by_day) / days, 1), "max": max(calls_by_day),
                               "by_day": calls_by_day},
        "xero_calls_by_purpose_last_24h": deps.budget_ledger.calls_by_purpose(connection_id),
        "egress_bytes_last_24h": deps.budget_ledger.egress_bytes(connection_id),
        "egress_mb_per_month_extrapolated": round(
            deps.budget_ledger.view(connection_id).egress_bytes_month / 1e6 * 30 / days, 2),
        "zoho_calls_per_day": round(len(zoho.calls(path_prefix="/crm/")) / days, 1),
        "payments": len(payments),
        "payments_seen_in_zoho": len(delays),
        "payment_delay_seconds": {"p50": pct(0.50), "p95": pct(0.95), "max": delays[-1] if delays else None},
        "parked": deps.store.parked.counts_by_reason(connection_id),
    }

