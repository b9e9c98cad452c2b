"""`connector backfill`: import the records that already exist in Xero, resumable and budget-aware.

In-process on the embedded default (each page pushed before the next is listed, a spent budget waited for
here), on the workers otherwise (this command then watches them); ``--dry-run`` lists and reports only.
A tqdm bar on stderr shows the progress, with the log lines above it. workers/cli_ops.py registers it
(``register``) among the operating commands; the logic lives in connector/backfill.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from datetime import timedelta

from connector.errors import InvalidArgument


def cmd_backfill(args: argparse.Namespace) -> int:
    from connector.backfill import resources_of
    from connector.replay import connection_id_of, parse_since
    from workers.deps import get_deps

    deps = get_deps()
    try:
        connection_id = connection_id_of(args.connection, deps.store)
        resources = resources_of(args.resources)
        since = None if args.since is None else parse_since(args.since, now=deps.store.clock.now())
        if args.budget is not None and args.budget < 1:
            raise InvalidArgument("--budget must be at least 1 call a day")
    except InvalidArgument as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    connection = deps.store.connections.get(connection_id)
    if args.dry_run:
        return _dry_run_here(deps, connection, resources, since, args)
    if connection.state != "active":
        print(f"backfill: connection #{connection_id} is {connection.state}; reconnect it first", file=sys.stderr)
        return 1
    from connector.backfill import chain_start

    deps.store.backfills.start(connection_id, resources, since=since, calls_per_day=args.budget)
    expect = chain_start(deps.store.backfills, connection_id, resources)
    if deps.settings.embedded:
        return _backfill_here(deps, connection_id, expect)
    from workers.backfill_tasks import send_step

    if expect is not None:  # None: another sender took the backfill over meanwhile, and carries it on
        send_step(connection_id, expect)
    print(f"backfill of connection #{connection_id} queued ({', '.join(resources)}); it resumes from its checkpoint "
          f"after any crash. Watch it with `connector status`.")
    if args.detach:
        return 0
    return _watch(deps, connection_id)


# A terminal that reports no size (a pseudo-terminal without one: `script`, `docker exec -t`) is given
# this many columns and rows: tqdm reads no size as no room and draws nothing.
DEFAULT_TERMINAL = (80, 24)
# Once the total is known: short, the records and then the postfix (ETA first), so 80 columns show what matters.
BAR_FORMAT = "{l_bar}{bar:10}| {n_fmt}/{total_fmt}{postfix}"
# While waiting for a budget the bar is redrawn this often (its elapsed time shows the wait is alive).
WAIT_TICK_SECONDS = 30.0
# A wait shorter than this (the rolling window freeing one call after another) goes without a message.
ANNOUNCED_WAIT_SECONDS = 60.0


def _progress_bar(desc: str, **options):
    """A tqdm bar on stderr, sized from the terminal (or DEFAULT_TERMINAL when it reports none)."""
    import os

    from tqdm import tqdm

    try:
        columns, rows = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor (captured)
        columns = rows = 0
    return tqdm(desc=desc, unit=" records", file=sys.stderr, ncols=columns or DEFAULT_TERMINAL[0],
                nrows=rows or DEFAULT_TERMINAL[1], **options)


class _AboveBar:
    """A log handler's stream that writes each line above the progress bar, which is then redrawn."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text.rstrip("\n"), file=self._stream)

    def flush(self) -> None:
        self._stream.flush()


@contextmanager
def _logs_above_bar():
    """While a bar is drawn, the log lines of the handlers writing to stderr or stdout go above it
    (a log line written under the bar would push it up, one line per record)."""
    import logging

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)]
    streams = [h.setStream(_AboveBar(h.stream)) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)


def _stamp(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def _eta(state) -> str:
    return f"ETA {'>= ' if state.eta_at_least and state.state != 'done' else ''}{_stamp(state.eta)}"


def _bar_update(bar, state) -> None:
    total = state.records + (state.remaining or 0) if state.remaining is not None else None
    if total is not None and bar.total != total:
        bar.total, bar.bar_format = total, BAR_FORMAT
    bar.n = state.records
    waiting = f", waiting until {_stamp(state.resume_after)}" if state.state == "waiting" else ""
    # The ETA first: a narrow terminal cuts the end of the line.
    bar.set_postfix_str(f"{_eta(state)}{waiting}, calls {state.calls}, "
                        f"budget left {'n/a' if state.budget_left is None else state.budget_left}")
    bar.refresh()


# What holds a listing up, by the governor's or Xero's scope of the limit (None: a 429's penalty).
LIMIT_NAMES = {"minute": "Xero's minute limit", "day": "Xero's daily call limit", "app": "Xero's app-wide minute limit",
               "concurrent": "Xero's limit on calls in flight", None: "the pause Xero asked for (429)"}


def _sleep_until(clock, until, bar) -> None:
    """Sleep on ``clock`` until ``until``, redrawing the bar as it goes (its elapsed time shows the wait is alive)."""
    while (left := (until - clock.now()).total_seconds()) > 0:
        clock.sleep(min(left, WAIT_TICK_SECONDS))
        bar.refresh()


def _dry_run_here(deps, connection, resources: list[str], since, args) -> int:
    """List as the backfill would, waiting for the rate limits as it does, and print what it would do and cost."""
    from connector.backfill import BackfillBudget, dry_run, real_backfill_cost
    from connector.pipeline.xero_in import PRIORITY_BACKFILL

    connection_id, clock = connection.id, deps.clock
    messages = sys.stderr if args.json else sys.stdout  # --json keeps stdout for the JSON

    listing, listed = "listing (dry run)", 0
    with _progress_bar(listing, disable=args.json) as bar, _logs_above_bar():
        def on_page(resource: str, count: int) -> None:
            nonlocal listed
            listed += count
            bar.update(count)

        def wait(scope, seconds: float) -> None:
            until = clock.now() + timedelta(seconds=seconds)
            limit = LIMIT_NAMES.get(scope, LIMIT_NAMES[None])
            if scope == "day" or seconds > ANNOUNCED_WAIT_SECONDS:  # a minute's wait shows on the bar only
                bar.write(f"backfill #{connection_id} (dry run): {limit} holds the listing; waiting until {_stamp(until)} "
                          f"and going on then. Ctrl-C stops it (a dry run starts over).", file=messages)
            # In the bar's description: its start, which a narrow terminal does not cut.
            bar.set_description(f"waiting for {limit} until {until:%H:%M:%S} UTC")
            _sleep_until(clock, until, bar)
            bar.set_description(listing)

        try:
            report = dry_run(connection_id, resources, since=since,
                             xero=deps.xero_client(connection, priority=PRIORITY_BACKFILL, dry_run=True),
                             links=deps.store.links, snapshots=deps.store.snapshots, config=deps.sync_config,
                             wait=wait, on_page=on_page)
        except KeyboardInterrupt:
            bar.write(f"dry run for connection #{connection_id} stopped after {listed} records; nothing was written. "
                      f"Run it again to start over.", file=messages)
            return 130
    cost = real_backfill_cost(report.xero_calls, day_limit=deps.budget_ledger.governing_day_limit(connection_id),
                              day_used=deps.governor.usage(connection.xero_tenant_id)["day_used"],
                              calls_per_day=args.budget,
                              backfill_used=BackfillBudget(deps.redis, clock=clock).used(connection_id))
    if args.json:
        print(json.dumps({**report.as_dict(), "real_backfill": cost.as_dict()}, indent=2))
        return 0
    print(f"dry run for connection #{connection_id} (nothing was written):")
    for resource in resources:
        print(f"  {resource:<12} create {report.create[resource]:>7}  update {report.update[resource]:>7}  "
              f"skip {report.skip[resource]:>7}")
    print(f"  cost: {report.xero_calls} Xero calls (spent on this listing too), "
          f"about {report.zoho_calls} Zoho write calls")
    days = "within a day" if cost.days <= 1 else f"over about {cost.days} days"
    budget = "its --budget" if args.budget is not None and cost.calls_per_day == args.budget \
        else "the governor's backfill share of Xero's day"
    print(f"  a real backfill: {cost.xero_calls} Xero calls, {days} at the current budget "
          f"({cost.calls_per_day} calls per 24 h: {budget}; {cost.left_today} left now)")
    return 0


def _claim_next(checkpoints, connection_id: int) -> tuple[str, int] | None:
    """Take the backfill's next checkpoint over for this process's chain (after a wait); None when
    nothing is left or another run took it first."""
    from connector.backfill import first_pending

    following = first_pending(checkpoints, connection_id)
    version = checkpoints.claim(following) if following is not None else None
    return (following.resource, version) if version is not None else None


def _waiting_message(connection_id: int, state, calls_per_day: int | None) -> str:
    until = _stamp(state.resume_after)
    if state.budget_left == 0:
        why = f"its budget of {calls_per_day} Xero calls per 24 h is spent"
    else:
        why = "Xero's daily call limit for this organisation is reached"
    return (f"backfill #{connection_id}: {why}; waiting until {until} and going on then ({_eta(state)}). "
            f"Ctrl-C stops it; the same command goes on from its checkpoint.")


def _backfill_here(deps, connection_id: int, expect: tuple[str, int] | None) -> int:
    """Embedded default: the steps run in this process, each page pushed before the next is listed.
    A spent budget is waited for here (sleeping until it frees; the message and the bar say until when),
    as the workers would: the command ends when the backfill is done, or on Ctrl-C (resumable)."""
    from connector.backfill import BackfillBudget, backfill_step, first_pending, progress
    from connector.errors import RateLimited
    from connector.pipeline.xero_in import PRIORITY_BACKFILL
    from workers.zoho_tasks import make_zoho_push

    connection = deps.store.connections.get(connection_id)
    xero = deps.xero_client(connection, priority=PRIORITY_BACKFILL)
    clock, checkpoints = deps.clock, deps.store.backfills
    budget = BackfillBudget(deps.redis, clock=clock)

    def push(resource: str, ids: list[str], sync_ids: dict) -> None:
        pusher = make_zoho_push(deps, connection, priority=PRIORITY_BACKFILL)
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            if resource == "contacts":
                pusher.contacts(chunk, sync_ids)
            elif resource == "invoices":
                pusher.invoices(chunk, sync_ids)
            else:
                pusher.related(resource, chunk, sync_ids)

    state = None
    with _progress_bar(f"backfill #{connection_id}") as bar, _logs_above_bar():
        try:
            while True:
                try:
                    outcome = backfill_step(connection_id, xero=xero, checkpoints=checkpoints, budget=budget,
                                            snapshots=deps.store.snapshots, audit=deps.store.audit, clock=clock,
                                            on_page=push, expect=expect)
                except RateLimited as exc:  # a minute or concurrency limit: moments
                    clock.sleep(min(exc.retry_after, 60.0))
                    continue
                state = progress(connection_id, checkpoints=checkpoints, budget=budget, clock=clock)
                _bar_update(bar, state)
                if outcome.state == "page" and outcome.expect is not None:
                    expect = outcome.expect
                    continue
                if outcome.state == "waiting":
                    until = clock.now() + timedelta(seconds=outcome.retry_after or 0)
                    if (outcome.retry_after or 0) >= ANNOUNCED_WAIT_SECONDS:
                        pending = first_pending(checkpoints, connection_id)
                        bar.write(_waiting_message(connection_id, state, pending and pending.calls_per_day),
                                  file=sys.stdout)
                    _sleep_until(clock, until, bar)
                    expect = _claim_next(checkpoints, connection_id)
                    if expect is not None:
                        continue
                    state = progress(connection_id, checkpoints=checkpoints, budget=budget, clock=clock)
                if outcome.state == "superseded" or state.state != "done":
                    bar.write(f"backfill of connection #{connection_id}: another run took it over and carries it "
                              f"on; watch it with `connector status`.", file=sys.stdout)
                    return 0
                break
        except KeyboardInterrupt:
            done = f" after {state.records} records ({state.calls} calls)" if state else ""
            bar.write(f"backfill #{connection_id} stopped{done}; run the same command again to go on from its "
                      f"checkpoint (finished pages are not listed again).", file=sys.stdout)
            return 130
    return _report(state)


def _report(state) -> int:
    print(f"backfill done: {state.records} records listed in {state.calls} calls")
    return 0


def _watch(deps, connection_id: int) -> int:
    """Distributed: the workers run the steps (and beat goes on after a budget wait); this shows them."""
    from connector.backfill import BackfillBudget, progress

    clock = deps.clock
    budget = BackfillBudget(deps.redis, clock=clock)
    announced = None
    try:
        with _progress_bar(f"backfill #{connection_id}") as bar, _logs_above_bar():
            while True:
                state = progress(connection_id, checkpoints=deps.store.backfills, budget=budget, clock=clock)
                _bar_update(bar, state)
                if state.state == "done":
                    break
                if state.state == "waiting" and state.resume_after != announced:
                    announced = state.resume_after
                    bar.write(f"backfill #{connection_id}: waiting until {_stamp(state.resume_after)} for its "
                              f"daily Xero budget; the workers go on then ({_eta(state)}). Ctrl-C stops watching "
                              f"only.", file=sys.stdout)
                clock.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopped watching; the backfill goes on in the workers")
        return 0
    return _report(state)


def register(sub) -> None:
    p = sub.add_parser("backfill", help="import the records that already exist in Xero (resumable, budget-aware)")
    p.add_argument("connection", help="connection number (see `connector connections`)")
    p.add_argument("--resources", default=None,
                   help="comma-separated: contacts,invoices,credit-notes,payments (default: all, in that order)")
    p.add_argument("--since", default=None, help="only records changed since (ISO date/time, or 30d, 12h)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be created, updated and skipped in Zoho, and the calls and days a "
                        "backfill takes at the current budget; write nothing")
    p.add_argument("--budget", type=int, default=None,
                   help="at most this many Xero calls per 24 hours for the backfill (default: whatever live "
                        "traffic leaves: the governor keeps 10%% of the day for it); with --dry-run, the budget "
                        "its estimate assumes")
    p.add_argument("--detach", action="store_true", help="queue it and return; do not show the progress bar")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the report as JSON")
    p.set_defaults(func=cmd_backfill)
