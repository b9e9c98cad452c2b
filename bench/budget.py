"""A simulated month of Xero calls for three organisations on Xero's Starter tier (1,000 calls a day):
the old fixed beat against the planner, in the same run.

The primary figures are the real code's (bench/support/budget_real.py): the connector's tasks, its receiver
over HTTP and its whole beat schedule against the Xero and Zoho sandboxes on a ManualClock, for the idle,
typical and busy organisations, each with the fixed beat (poll_xero_connections every 300 s, through today's
planner) and with the planner's beat, for ``--real-days`` (30 by default). Nothing waits on a wall clock: the
simulated clock goes from one due thing to the next. One process per row, ``--jobs`` at once; on a machine
shared with others a month of all six rows takes long (the JSON gives each row's wall-clock seconds).

The in-process model below stays as a cross-check, and is the only place the unbounded naive schedule (every
300 s, four lists, no share) still exists: it steps a simulated clock one minute at a time, with the real
decisions (connector/xero_schedule.py, connector/budget.py plan_scheduled) and modelled costs:

- a webhook delivery's ids are fetched with one IDs= call per resource per batch window (1 s, up to 50 ids);
- a CRM edit written back costs a GET and a POST of the contact, and its webhook echo one fetch;
- naive: every 300 s one If-Modified-Since list each of Contacts, Invoices, CreditNotes and Payments, and at
  03:07 a full sweep of contacts (1,000 a page); its polls yield at 90 % of the day (the governor's backfill
  headroom) and webhook work is refused past 100 %;
- planner: a catch-up poll of three resources when triggered or every 8 h, a weekly contact check, and
  adaptive payment polls, each call granted by plan_scheduled within 10 % of the day.

Response sizes are measured from the Xero sandbox's own renderings. Webhook delivery latency is 1 to 5 s
(Xero does not publish it: UNVERIFIED), the model's fetch and Zoho push 1.5 s. Changes happen on working days
(Monday to Friday) between 08:00 and 18:00 UTC. CRM edits written back to Xero are in the model only.

    .venv/bin/python bench/budget.py [--real-days 30] [--orgs idle,typical,busy] [--modes fixed_beat,planner]
                                     [--jobs 2] [--progress-dir DIR] [--days 30] [--seed 7]

The last line printed is one JSON object with the figures (real code under "real_code", model under "model").
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import sys
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.budget import PlanInputs, expected_live, live_reserve, plan_scheduled, scheduled_allowance  # noqa: E402
from connector.sandbox.xero import XeroSandbox  # noqa: E402
from connector.xero_schedule import (  # noqa: E402
    CREDIT_RESOURCES,
    OrgSchedule,
    SchedulePolicy,
    catch_up_due,
    check_due,
    payments_due,
)

DAY, HOUR, TICK = 86400, 3600, 60
STARTER = 1000
SHARE = 0.10
NAIVE_INTERVAL = 300
POLL_YIELD = 0.90  # naive polls run at backfill priority: the governor keeps 10 % of the day from them
PROCESS = 1.5  # fetch + Zoho push, seconds
BATCH_WINDOW = 1.0
ORGS = {  # changes per working day (the numbers); contacts on file; open invoices at the start
    "idle": {"invoices": 0, "payments": 0, "contacts": 0, "crm_edits": 0, "contacts_on_file": 200, "open": 5},
    "typical": {"invoices": 40, "payments": 25, "contacts": 15, "crm_edits": 5, "contacts_on_file": 800, "open": 30},
    "busy": {"invoices": 400, "payments": 250, "contacts": 150, "crm_edits": 50, "contacts_on_file": 8000,
             "open": 300},
}


def measured_sizes() -> dict[str, int]:
    """Bytes of one record of each kind and of an empty list answer, as the Xero sandbox renders them."""
    xero = XeroSandbox()
    tenant = xero.add_tenant("Sizes Ltd")
    contact = xero.create_contact(tenant, Name="Size Customer Ltd", EmailAddress="accounts@example.com")
    line = [{"Description": "Consulting", "Quantity": 2, "UnitAmount": "150.00", "AccountCode": "200"}]
    invoice = xero.create_invoice(tenant, contact["ContactID"], line)
    payment = xero.add_payment(tenant, invoice["InvoiceID"], 100)
    invoice = xero.invoice(tenant, invoice["InvoiceID"])
    envelope = len(json.dumps({"Id": "x" * 36, "Status": "OK", "ProviderName": "x" * 20, "DateTimeUTC": "x" * 26,
                               "pagination": {"page": 1, "pageSize": 1000, "pageCount": 1, "itemCount": 0}}))
    def size(record: dict) -> int:
        return len(json.dumps(record, default=str))

    return {"contact": size(contact), "invoice": size(invoice), "payment": size(payment), "empty": envelope + 20}


@dataclass
class Org:
    name: str
    mode: str  # naive | planner | planner_invoice_events
    spec: dict
    sizes: dict
    rng: random.Random
    calls_by_day: list[int] = field(default_factory=list)
    egress: int = 0
    zoho_credits: int = 0
    delays: dict[str, list[float]] = field(default_factory=lambda: {"invoices": [], "payments": [], "contacts": []})
    webhook_denied: int = 0
    deferred: int = 0
    polls_yielded: int = 0
    # model state
    day_used: int = 0
    grants: deque = field(default_factory=deque)  # scheduled grants, last 24 h
    live: deque = field(default_factory=deque)  # live calls, last 24 h
    live_today: int = 0
    schedule: OrgSchedule = field(default_factory=OrgSchedule)
    open_invoices: int = 0
    pending_payments: list[float] = field(default_factory=list)
    parked: list[tuple[str, float]] = field(default_factory=list)

    def spend(self, calls: int, nbytes: int, now: float, *, live: bool) -> None:
        self.day_used += calls
        self.egress += nbytes
        if live:
            self.live.extend([now] * calls)
            self.live_today += calls

    def live_expected(self, now: float) -> int:
        while self.live and self.live[0] <= now - DAY:
            self.live.popleft()
        return expected_live(len(self.live), self.live_today)

    def may_schedule(self, calls: int, now: float) -> bool:
        if self.mode == "naive":
            allowed = self.day_used + calls <= POLL_YIELD * STARTER
            self.polls_yielded += 0 if allowed else 1
            return allowed
        while self.grants and self.grants[0] <= now - DAY:
            self.grants.popleft()
        inputs = PlanInputs(day_limit=STARTER, share=SHARE, scheduled_used=len(self.grants), day_used=self.day_used,
                            live_expected=self.live_expected(now))
        if plan_scheduled(inputs, calls) is not None:
            self.deferred += 1
            return False
        self.grants.extend([now] * calls)
        return True

    def may_go_live(self, calls: int) -> bool:
        """Webhook work: refused only when the day is spent (the governor's day window), never by the planner."""
        if self.day_used + calls > STARTER:
            self.webhook_denied += calls
            return False
        return True


def day_of_changes(org: Org, day_start: float) -> list[tuple[float, str]]:
    if (day_start // DAY + 3) % 7 >= 5:  # 1 January 1970 was a Thursday: skip Saturdays and Sundays
        return []
    changes = []
    for kind in ("invoices", "payments", "contacts", "crm_edits"):
        for _ in range(org.spec[kind]):
            changes.append((day_start + 8 * HOUR + org.rng.uniform(0, 10 * HOUR), kind))
    return sorted(changes)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(math.ceil(share * len(ordered))) - 1, len(ordered) - 1)], 1)


def simulate(org: Org, days: int) -> None:
    policy = SchedulePolicy()
    allowance = scheduled_allowance(STARTER, SHARE)
    org.open_invoices = org.spec["open"]
    org.schedule = OrgSchedule(open_invoices=org.open_invoices)
    invoice_events = org.mode == "planner_invoice_events"
    webhooks: list[tuple[float, str, float]] = []  # (delivered at, resource, changed at)
    last_naive_poll = -NAIVE_INTERVAL
    today_changes: list[tuple[float, str]] = []
    for tick in range(0, days * DAY, TICK):
        now = float(tick)
        if tick % DAY == 0:
            if tick:
                org.calls_by_day.append(org.day_used)
            org.day_used = org.live_today = 0  # Xero's day window resets (modelled at midnight UTC)
            today_changes = day_of_changes(org, now)
            # parked webhook work goes back once the day frees
            webhooks.extend((now, resource, changed) for resource, changed in org.parked)
            org.parked = []
        # the changes of this minute, and the webhooks they raise
        while today_changes and today_changes[0][0] < now + TICK:
            at, kind = today_changes.pop(0)
            latency = org.rng.uniform(1, 5)
            if kind == "invoices":
                webhooks.append((at + latency, "invoices", at))
                org.open_invoices += 1
            elif kind == "contacts":
                webhooks.append((at + latency, "contacts", at))
            elif kind == "payments":
                org.pending_payments.append(at)
                org.open_invoices = max(org.open_invoices - 1, 0)
                if invoice_events:
                    webhooks.append((at + latency, "invoice_payment", at))
            elif kind == "crm_edits":
                if org.may_go_live(2):
                    org.spend(2, org.sizes["contact"] * 2, at, live=True)
                    org.zoho_credits += 1
                    org.schedule = replace(org.schedule, last_write_back_at=at)
                    webhooks.append((at + latency, "echo", at))
        # webhook work: one fetch per resource per batch window
        due_now = sorted(w for w in webhooks if w[0] < now + TICK)
        webhooks = [w for w in webhooks if w[0] >= now + TICK]
        windows: dict[tuple[str, int], list[tuple[float, str, float]]] = {}
        for delivered, resource, changed in due_now:
            fetched_as = "invoices" if resource in ("invoices", "invoice_payment") else "contacts"
            windows.setdefault((fetched_as, int(delivered // BATCH_WINDOW)), []).append((delivered, resource, changed))
        for (fetched_as, _), group in sorted(windows.items(), key=lambda item: item[1][0][0]):
            calls = math.ceil(len(group) / 50)
            if not org.may_go_live(calls):
                org.parked.extend((resource, changed) for _, resource, changed in group)
                continue
            org.spend(calls, org.sizes["invoice" if fetched_as == "invoices" else "contact"] * len(group), now,
                      live=True)
            done_at = max(d for d, _, _ in group) + BATCH_WINDOW + PROCESS
            org.schedule = replace(org.schedule, last_webhook_at=done_at)
            for _, resource, changed in group:
                if resource == "echo":
                    continue
                if resource == "invoice_payment":  # the invoice fetch shows the payment (Payments[], AmountPaid)
                    if changed in org.pending_payments:
                        org.pending_payments.remove(changed)
                        org.delays["payments"].append(done_at - changed)
                    org.schedule = replace(org.schedule, payments_seen_via_invoice=done_at)
                    org.zoho_credits += 1
                    continue
                org.delays[resource].append(done_at - changed)
                org.zoho_credits += 2 if resource == "invoices" else 1
                if resource == "invoices":
                    org.schedule = replace(org.schedule, open_changed_at=done_at)
        org.schedule = replace(org.schedule, open_invoices=org.open_invoices)
        # scheduled work
        if org.mode == "naive":
            if now - last_naive_poll >= NAIVE_INTERVAL:
                last_naive_poll = now
                for resource in ("contacts", "invoices", "creditnotes", "payments"):
                    if not org.may_schedule(1, now):
                        continue
                    size = org.sizes["empty"] + (org.sizes["payment"] * len(org.pending_payments)
                                                 if resource == "payments" else 0)
                    org.spend(1, size, now, live=False)
                    if resource == "payments":
                        settle_payments(org, now)
            if tick % DAY == 3 * HOUR + 7 * 60:  # the daily full sweep of contacts
                pages = math.ceil(org.spec["contacts_on_file"] / 1000)
                if org.may_schedule(pages, now):
                    org.spend(pages, org.sizes["contact"] * org.spec["contacts_on_file"], now, live=False)
            continue
        due = payments_due(org.schedule, policy, now, allowance)
        calls = len(due.resources) if due else 0  # payments, and overpayments and prepayments when due
        if due and org.may_schedule(calls, now):
            org.spend(calls, calls * org.sizes["empty"] + org.sizes["payment"] * len(org.pending_payments), now,
                      live=False)
            settle_payments(org, now)
            credits = set(due.resources) & set(CREDIT_RESOURCES)
            org.schedule = replace(org.schedule, last_payments_poll=now,
                                   **({"last_credits_poll": now} if credits else {}))
        if catch_up_due(org.schedule, policy, now, allowance) and org.may_schedule(3, now):
            org.spend(3, 3 * org.sizes["empty"], now, live=False)
            org.schedule = replace(org.schedule, last_catch_up=now, triggers={})
        if check_due(org.schedule, policy, now, allowance):
            pages = math.ceil(org.spec["contacts_on_file"] / 1000)
            if org.may_schedule(pages, now):
                org.spend(pages, org.sizes["contact"] * org.spec["contacts_on_file"], now, live=False)
                org.schedule = replace(org.schedule, last_check=now)
    org.calls_by_day.append(org.day_used)


def settle_payments(org: Org, now: float) -> None:
    for paid_at in org.pending_payments:
        org.delays["payments"].append(now + PROCESS - paid_at)
        org.zoho_credits += 1
    org.pending_payments = []


def summary(org: Org, days: int) -> dict:
    return {
        "xero_calls_per_day": {"mean": round(sum(org.calls_by_day) / len(org.calls_by_day), 1),
                               "max": max(org.calls_by_day)},
        "egress_mb_per_month": round(org.egress / 1e6 * 30 / days, 2),
        "zoho_credits_per_day": round(org.zoho_credits / days, 1),
        "delay_seconds": {kind: {"p50": percentile(v, 0.50), "p95": percentile(v, 0.95),
                                 "max": round(max(v), 1) if v else None}
                          for kind, v in org.delays.items()},
        "webhook_calls_refused": org.webhook_denied,
        "scheduled_deferred": org.deferred,
        "polls_yielded": org.polls_yielded,
    }


REAL_MODES = ("fixed_beat", "planner")


def run_real_row(name: str, mode: str, days: int, seed: int, progress_dir: str | None) -> dict:
    """One organisation and mode of the real code (in a process of its own when --jobs > 1)."""
    from bench.support.budget_real import run_org

    progress = None
    if progress_dir:
        target = Path(progress_dir) / f"{name}-{mode}.json"

        def progress(days_done: int, figures: dict) -> None:
            target.write_text(json.dumps({"org": name, "mode": mode, "days_done": days_done, "figures": figures}))

    figures = run_org(name, ORGS[name], mode, days, seed, log_dir=Path(progress_dir) if progress_dir else None,
                      progress=progress)
    if progress is not None:
        progress(days, figures)
    return figures


def run_real(orgs: list[str], modes: list[str], days: int, seed: int, jobs: int, progress_dir: str | None) -> dict:
    rows = [(name, mode) for name in orgs for mode in modes]
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {row: pool.submit(run_real_row, *row, days, seed, progress_dir) for row in rows}
            done = {row: future.result() for row, future in futures.items()}
    else:
        done = {row: run_real_row(*row, days, seed, progress_dir) for row in rows}
    real: dict[str, dict] = {}
    for (name, mode), figures in done.items():
        real.setdefault(name, {})[mode] = figures
    return real


def delay_text(delay: dict) -> str:
    def seconds(value) -> str:
        return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"

    return f"{seconds(delay['p50'])}/{seconds(delay['p95'])}/{seconds(delay['max'])}"


def print_real(real: dict, days: int) -> None:
    print(f"REAL CODE, {days} simulated days (Xero calls from the sandbox's log; delays p50/p95/max s, change in "
          "Xero -> written in Zoho):")
    print(f"{'org':8} {'mode':10} {'calls/day':>13} {'429s':>4} {'MB/month':>8} {'Zoho cr/day':>11}  "
          f"{'invoices':>15} {'payments':>15} {'contacts':>15}  {'denied':>6} {'deferred':>8}  parked / lost")
    for name, modes in real.items():
        for mode, f in modes.items():
            calls, delays = f["xero_calls_per_day"], f["delay_seconds"]
            print(f"{name:8} {mode:10} {calls['mean']:7.1f} {calls['max']:5} {f['xero_429s']:4} "
                  f"{f['egress_mb_per_month']:8.2f} {f['zoho_credits_per_day']['mean']:11.1f}  "
                  f"{delay_text(delays['invoices']):>15} {delay_text(delays['payments']):>15} "
                  f"{delay_text(delays['contacts']):>15}  {f['webhook_flushes_denied']:6} {f['scheduled_deferred']:8}  "
                  f"{sum(f['not_in_zoho_parked'].values())} / {sum(f['not_in_zoho_at_end'].values())}  "
                  f"({f['bench_seconds']:.0f} s)")


def real_targets(real: dict) -> dict[str, bool]:
    targets: dict[str, bool] = {}
    planner = {name: modes["planner"] for name, modes in real.items() if "planner" in modes}
    if "idle" in planner:
        targets["idle_at_most_60_a_day"] = planner["idle"]["xero_calls_per_day"]["max"] <= 60
    if "typical" in planner:
        typical = planner["typical"]
        targets["typical_at_most_250_a_day"] = typical["xero_calls_per_day"]["max"] <= 250
        targets["typical_payments_p95_within_30_min"] = (typical["delay_seconds"]["payments"]["p95"] or 0) <= 1800
        targets["typical_invoices_contacts_p95_within_10_s"] = all(
            (typical["delay_seconds"][k]["p95"] or 0) <= 10 for k in ("invoices", "contacts"))
    for name, figures in planner.items():
        targets[f"{name}_no_429"] = figures["xero_429s"] == 0
        # every change is in Zoho by the end, or its work is parked (and shown): nothing dropped
        targets[f"{name}_nothing_dropped"] = not figures["not_in_zoho_at_end"]
        targets[f"{name}_no_task_failed"] = not figures["task_failures"]
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of the in-process model (0: no model)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real-days", type=int, default=30, help="simulated days of the real code (0: none)")
    parser.add_argument("--orgs", default=",".join(ORGS), help="organisations of the real run, comma-separated")
    parser.add_argument("--modes", default=",".join(REAL_MODES), help="modes of the real run, comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="real-code rows run at once, one process each")
    parser.add_argument("--progress-dir", help="write each real row's figures every simulated day, and its "
                        "connector log, here (by default the log goes to a temporary folder)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench stops its redis-servers too
    orgs = [o for o in args.orgs.split(",") if o]
    modes = [m for m in args.modes.split(",") if m]
    if set(orgs) - set(ORGS) or set(modes) - set(REAL_MODES):
        parser.error(f"--orgs from {sorted(ORGS)}, --modes from {list(REAL_MODES)}")
    sizes = measured_sizes()
    model: dict[str, dict] = {}
    if args.days:
        for name, spec in ORGS.items():
            model[name] = {}
            for mode in ("naive", "planner", "planner_invoice_events"):
                org = Org(name, mode, spec, sizes, random.Random(args.seed))
                simulate(org, args.days)
                model[name][mode] = summary(org, args.days)
        print(f"MODEL (cross-check), {args.days} days:")
        for name, modes_ in model.items():
            for mode, figures in modes_.items():
                calls, delays = figures["xero_calls_per_day"], figures["delay_seconds"]
                print(f"{name:8} {mode:23} calls/day mean {calls['mean']:7.1f} max {calls['max']:5}  "
                      f"egress {figures['egress_mb_per_month']:7.2f} MB/month  payments p95 "
                      f"{delays['payments']['p95']} s  invoices p95 {delays['invoices']['p95']} s  "
                      f"webhook calls refused {figures['webhook_calls_refused']}")
    real = run_real(orgs, modes, args.real_days, args.seed, args.jobs, args.progress_dir) if args.real_days else {}
    if real:
        print_real(real, args.real_days)
    targets = real_targets(real)
    model_targets = {}
    if model:
        typical = model["typical"]["planner"]
        model_targets = {
            "idle_at_most_60_a_day": model["idle"]["planner"]["xero_calls_per_day"]["max"] <= 60,
            "typical_at_most_250_a_day": typical["xero_calls_per_day"]["max"] <= 250,
            "typical_payments_p95_within_30_min": (typical["delay_seconds"]["payments"]["p95"] or 0) <= 1800,
            "typical_invoices_contacts_p95_within_10_s": all(
                (typical["delay_seconds"][k]["p95"] or 0) <= 10 for k in ("invoices", "contacts")),
            "busy_webhook_work_never_refused": model["busy"]["planner"]["webhook_calls_refused"] == 0,
        }
    print(json.dumps({"bench": "budget", "day_limit": STARTER, "scheduled_share": SHARE, "seed": args.seed,
                      "scheduled_allowance": scheduled_allowance(STARTER, SHARE),
                      "live_reserve_floor": live_reserve(PlanInputs(STARTER, SHARE, 0, 0, 0)),
                      "real_code": {"days": args.real_days, "results": real, "targets": targets,
                                    "fixed_beat": "poll_xero_connections every 300 s instead of plan_xero_polls, "
                                                  "through today's planner",
                                    "zoho_credits": "one per /crm/ call (Zoho's 1 credit a call; the connector "
                                                    "uses none of the APIs charged more)"},
                      "model": {"days": args.days, "sizes_bytes": sizes, "results": model, "targets": model_targets}}))
    return 0 if all(targets.values()) and all(model_targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
