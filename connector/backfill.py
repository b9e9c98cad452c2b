"""Backfill: import the records that already exist in Xero, page by page, behind live traffic.

Each step lists ONE page (pageSize 1000, https://developer.xero.com/documentation/api/accounting/invoices)
ordered by UpdatedDateUTC at backfill priority, so the rate governor keeps its headroom for webhook
work (connector/ratelimit.py), stores the records as snapshots, hands the new ones on to Zoho and only then moves the
durable checkpoint.
A crash loses at most the page in flight; finished pages are never listed again.

Paging is by key, not by page number alone: the next request asks If-Modified-Since the second
before the newest record of the last page (page 1 again), so a record edited during the import
cannot shift an unread record onto an already read page. Records re-listed from that shared second
are recognised (same UpdatedDateUTC and content as stored) and not handed on twice. Only when a
whole page sits in one second does the page number advance instead.

Budget: besides the governor's share for priority 2, a backfill may be given its own number of Xero
calls per rolling 24 hours; when that is spent the checkpoint waits (resume_after) and beat resumes
it, so a large org is spread over days. Memory: one page at a time, never the whole org.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from connector.clock import Clock
from connector.errors import InvalidArgument, RateLimited
from connector.listed_pages import is_known, store_listed_page
from connector.mapping.hashing import content_hash
from connector.mapping.xero_values import parse_xero_date
from connector.pipeline.account_money import map_contact_as_pushed
from connector.pipeline.common import ID_FIELDS
from connector.mapping.zoho_records import zoho_contact_records
from connector.pipeline.xero_in import PRIORITY_BACKFILL
from connector.ratelimit import day_share, day_share_left, problem_scope
from connector.replay import resource_of

# dependency order: contacts first
RESOURCES = ("contacts", "invoices", "creditnotes", "payments", "overpayments", "prepayments")
RESOURCE_WORDS = "contacts, invoices, credit-notes, payments, overpayments, prepayments"
PAGE_SIZE = 1000
ORDER = "UpdatedDateUTC ASC"
DAY_MS = 86_400_000
# Backfill calls run at the governor's priority 2, which keeps 25% of each minute for live work.
BACKFILL_CALLS_PER_MINUTE = 45
# Zoho writes at most 100 records per call (https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html).
ZOHO_RECORDS_PER_WRITE = 100
# Re-anchoring lists the last page's newest second again; above this many records it is not worth it.
MAX_RELISTED = 50


def resources_of(text: str | None) -> list[str]:
    """"contacts,invoices,credit-notes,payments,overpayments,prepayments" (any spelling) → resources in
    dependency order."""
    if not text:
        return list(RESOURCES)
    wanted = set()
    for part in (p for p in text.split(",") if p.strip()):
        try:
            wanted.add(resource_of(part))
        except InvalidArgument:
            raise InvalidArgument(f"--resources takes {RESOURCE_WORDS}; got {part!r}") \
                from None
    if not wanted:
        raise InvalidArgument(f"--resources needs at least one of {RESOURCE_WORDS}")
    return [r for r in RESOURCES if r in wanted]


class BackfillBudget:
    """The calls one connection's backfill made in the last 24 hours, shared by every process (Redis)."""

    def __init__(self, redis, *, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock

    def _key(self, connection_id: int) -> str:
        return f"backfill:calls:{connection_id}"

    def _now_ms(self) -> int:
        return round(self._clock.time() * 1000)

    def used(self, connection_id: int) -> int:
        now = self._now_ms()
        return int(self._redis.zcount(self._key(connection_id), f"({now - DAY_MS}", "+inf"))

    def wait(self, connection_id: int, calls_per_day: int | None) -> float:
        """Seconds until one more call fits in the budget (0.0: now)."""
        if calls_per_day is None:
            return 0.0
        now = self._now_ms()
        key = self._key(connection_id)
        self._redis.zremrangebyscore(key, "-inf", now - DAY_MS)
        used = int(self._redis.zcard(key))
        if used < calls_per_day:
            return 0.0
        oldest = self._redis.zrange(key, used - calls_per_day, used - calls_per_day, withscores=True)
        return max((oldest[0][1] + DAY_MS - now) / 1000, 0.001)

    def spend(self, connection_id: int) -> None:
        now = self._now_ms()
        key = self._key(connection_id)
        self._redis.zadd(key, {uuid.uuid4().hex: now})
        self._redis.pexpire(key, DAY_MS + 60_000)


@dataclass
class StepOutcome:
    state: str  # "page" (one page stored), "waiting" (budget), "done", "superseded" (another step won)
    resource: str | None = None
    records: int = 0
    handed_on: int = 0
    retry_after: float | None = None
    # What the next step of this chain expects (resource, version): None when nothing is left.
    expect: tuple[str, int] | None = None


def first_pending(checkpoints, connection_id: int):
    """The checkpoint a step works on: the first unfinished resource in dependency order, or None."""
    pending = [c for c in checkpoints.for_connection(connection_id) if c.state != "done"]
    return min(pending, key=lambda c: RESOURCES.index(c.resource)) if pending else None


def chain_start(checkpoints, connection_id: int, resources: list[str]) -> tuple[str, int] | None:
    """The (resource, version) the first step of a chain just started (``checkpoints.start``) expects. start()
    moved the versions of ``resources`` on; an unfinished resource of an earlier run that comes first is claimed.
    None: another sender took the backfill over meanwhile, and carries it on."""
    first = first_pending(checkpoints, connection_id)
    if first is None:
        return None
    if first.resource in resources:
        return first.resource, first.version
    version = checkpoints.claim(first)
    return (first.resource, version) if version is not None else None


def next_position(anchor: datetime | None, page: int, oldest: datetime | None, newest: datetime | None,
                  in_newest_second: int = 1) -> tuple[datetime | None, int]:
    """Where the next page request starts, after a page holding records from ``oldest`` to ``newest``.

    If-Modified-Since is to the second and means "after"
    (https://developer.xero.com/documentation/api/requests-and-responses): re-anchor on the second before the
    newest record's, which lists that second's ``in_newest_second`` records again. When that is too
    many (bulk imports put thousands in one second), go on by page number instead."""
    if newest is None or oldest is None or oldest.replace(microsecond=0) == newest.replace(microsecond=0) \
            or in_newest_second > MAX_RELISTED:
        return anchor, page + 1
    return newest.replace(microsecond=0) - timedelta(seconds=1), 1


def backfill_step(connection_id: int, *, xero, checkpoints, budget: BackfillBudget, snapshots, audit, clock: Clock,
                  on_page, expect: tuple[str, int] | None = None,
                  plan: Callable[[], float] | None = None) -> StepOutcome:
    """List and store the next page of the first unfinished resource of this connection's backfill.

    ``on_page(resource, ids, sync_ids)`` hands the new records on (to Zoho). A short rate limit raises
    RateLimited (the caller retries soon); a spent budget (ours or Xero's day) makes the checkpoint wait.
    ``expect`` is the (resource, version) the step's chain left the checkpoint at: whoever starts a
    chain moves the version on, so a step left over from an older chain lists nothing (None: no check).
    ``plan()`` asks the day-budget planner for the page's call: 0.0 when granted, else seconds to wait.
    """
    checkpoint = first_pending(checkpoints, connection_id)
    if checkpoint is None:
        return StepOutcome("done")
    resource = checkpoint.resource
    if expect is not None and (resource, checkpoint.version) != tuple(expect):
        return StepOutcome("superseded", resource)
    if checkpoint.resume_after is not None and checkpoint.resume_after > clock.now():
        return StepOutcome("waiting", resource, retry_after=(checkpoint.resume_after - clock.now()).total_seconds())
    wait = budget.wait(connection_id, checkpoint.calls_per_day)
    if wait == 0 and plan is not None:
        wait = plan()  # the organisation's scheduled share of the day, which polls share too
    if wait > 0:
        checkpoints.wait_until(checkpoint, clock.now() + timedelta(seconds=wait))
        return StepOutcome("waiting", resource, retry_after=wait)
    try:
        page = xero.list_records(resource, modified_since=checkpoint.anchor, page=checkpoint.page,
                                 page_size=PAGE_SIZE, order=ORDER)
    except RateLimited as exc:
        if problem_scope(exc.problem) != "day":
            raise
        checkpoints.wait_until(checkpoint, clock.now() + timedelta(seconds=exc.retry_after))
        return StepOutcome("waiting", resource, retry_after=exc.retry_after)
    budget.spend(connection_id)

    # Re-anchored on the second before the last page's newest record: that second's records were
    # handed on with the last page already.
    overlap = (checkpoint.anchor + timedelta(seconds=1)
               if checkpoint.page == 1 and checkpoint.anchor is not None and checkpoint.anchor != checkpoint.since
               else None)
    relisted = 0

    def wanted(previous, updated: datetime, record: dict) -> bool:
        nonlocal relisted
        if is_known(previous, updated, record) and updated.replace(microsecond=0) == overlap:
            relisted += 1
            return False
        # Not when a webhook fetch stored something newer, and handed it on. Otherwise handed on even
        # when stored before (by a webhook, or by a step that died before its hand-over): the push
        # writes nothing to Zoho when Zoho already matches.
        return previous is None or previous.source_updated_at <= updated

    stored = store_listed_page(connection_id, resource, page.items, snapshots=snapshots, audit=audit,
                               source="backfill", wanted=wanted)
    handed, oldest, newest = stored.handed, stored.oldest, stored.newest
    if handed:
        on_page(resource, list(handed), handed)
    in_newest_second = sum(1 for updated in stored.updated
                           if updated.replace(microsecond=0) == newest.replace(microsecond=0)) if newest else 0
    anchor, page_number = next_position(checkpoint.anchor, checkpoint.page, oldest, newest, in_newest_second)
    remaining = None
    if page.item_count is not None:
        remaining = max(page.item_count - page.page * PAGE_SIZE, 0)
    done = not page.has_more or not page.items
    if not checkpoints.advance(checkpoint, anchor=anchor, page=page_number, records=len(page.items) - relisted,
                               remaining=0 if done else remaining, done=done):
        return StepOutcome("superseded", resource)
    return StepOutcome("page", resource, records=len(page.items) - relisted, handed_on=len(handed),
                       expect=_continuation(checkpoints, connection_id, checkpoint, done))


def _continuation(checkpoints, connection_id: int, checkpoint, done: bool) -> tuple[str, int] | None:
    """What the next step expects after this one advanced ``checkpoint``; None: send no next step."""
    if not done:
        return checkpoint.resource, checkpoint.version + 1  # advance moved the version on by one
    following = first_pending(checkpoints, connection_id)
    if following is None:
        return None
    # The next resource has not moved since it was started: claim it, or beat could take it as stale.
    version = checkpoints.claim(following)
    return (following.resource, version) if version is not None else None


# -- progress and ETA -----------------------------------------------------------------------------


@dataclass
class Progress:
    records: int
    remaining: int | None
    calls: int
    budget_left: int | None
    eta: datetime | None
    state: str
    resources: dict[str, dict] = field(default_factory=dict)
    # True while a resource not yet listed has no count: each is taken as one page, so the ETA is the soonest.
    eta_at_least: bool = False
    resume_after: datetime | None = None  # while waiting: when the budget lets the next call go


def estimate_eta(*, remaining_calls: int, budget_left: int | None, calls_per_day: int | None, now: datetime,
                 budget_frees_in: float = 0.0) -> datetime:
    """When the remaining pages are likely listed: at the governor's backfill pace while budget lasts,
    then one day's budget a day. ``budget_frees_in``: a wait (ours or Xero's day) before any call."""
    if remaining_calls <= 0:
        return now
    pace = 60 / BACKFILL_CALLS_PER_MINUTE
    today = remaining_calls if budget_left is None else min(remaining_calls, budget_left)
    seconds = budget_frees_in + today * pace
    rest = remaining_calls - today
    if rest > 0 and calls_per_day:
        seconds += (math.ceil(rest / calls_per_day) - 1) * 86400 + min(rest, calls_per_day) * pace
    return now + timedelta(seconds=seconds)


def progress(connection_id: int, *, checkpoints, budget: BackfillBudget, clock: Clock) -> Progress:
    rows = checkpoints.for_connection(connection_id)
    now = clock.now()
    calls_per_day = next((c.calls_per_day for c in rows if c.state != "done"), None)
    used = budget.used(connection_id)
    budget_left = None if calls_per_day is None else max(calls_per_day - used, 0)
    unfinished = [c for c in rows if c.state != "done"]
    unknown = any(c.remaining is None for c in unfinished)
    # A resource not listed yet counts as one page: the ETA is then the soonest it can be.
    remaining_calls = sum(math.ceil((c.remaining or 0) / PAGE_SIZE) + (c.remaining is None) for c in unfinished)
    waiting = [c.resume_after for c in unfinished if c.state == "waiting" and c.resume_after]
    resume_after = max(waiting, default=None)
    frees_in = max((resume_after - now).total_seconds(), 0.0) if resume_after else 0.0
    state = "done" if rows and not unfinished else "waiting" if waiting else "running"
    return Progress(
        records=sum(c.records for c in rows),
        remaining=None if unknown else sum(c.remaining for c in unfinished),
        calls=sum(c.pages for c in rows), budget_left=budget_left,
        eta=estimate_eta(remaining_calls=remaining_calls, budget_left=budget_left, calls_per_day=calls_per_day,
                         now=now, budget_frees_in=frees_in),
        state=state,
        resources={c.resource: {"state": c.state, "records": c.records, "pages": c.pages, "remaining": c.remaining,
                                "resume_after": c.resume_after.isoformat() if c.resume_after else None}
                   for c in rows},
        eta_at_least=unknown,
        resume_after=resume_after if state == "waiting" else None,
    )


# -- dry run --------------------------------------------------------------------------------------


@dataclass
class DryRunReport:
    """What a backfill would do in Zoho, and what it would cost, from a read-only listing."""

    xero_calls: int = 0
    create: dict[str, int] = field(default_factory=dict)
    update: dict[str, int] = field(default_factory=dict)
    skip: dict[str, int] = field(default_factory=dict)
    zoho_calls: int = 0

    def as_dict(self) -> dict:
        return {"xero_calls": self.xero_calls, "zoho_calls": self.zoho_calls, "create": self.create,
                "update": self.update, "skip": self.skip}


def dry_run(connection_id: int, resources: list[str], *, since: datetime | None, xero, links, snapshots, config,
            wait, on_page=None) -> DryRunReport:
    """List every page as the backfill would (spending those Xero calls) and classify each record
    against the id links and snapshots; writes nothing anywhere.

    A rate limit holds the listing as it holds a backfill: ``wait(scope, seconds)`` ("minute", "day",
    "app", "concurrent" or None for a penalty) returns once that time has passed, then the same page is
    asked again."""
    report = DryRunReport()
    for resource in resources:
        counts = {"create": 0, "update": 0, "skip": 0}
        counted: set[str] = set()  # ids of the last page's newest second: listed again after re-anchoring
        anchor, page_number = since, 1
        while True:
            page = _list_when_allowed(xero, resource, wait, modified_since=anchor, page=page_number,
                                      page_size=PAGE_SIZE, order=ORDER)
            report.xero_calls += 1
            oldest = newest = None
            last_second: dict[datetime, set[str]] = {}
            overlap = anchor + timedelta(seconds=1) if page_number == 1 and anchor is not None and anchor != since \
                else None
            for record in page.items:
                updated = parse_xero_date(record.get("UpdatedDateUTC"), field="UpdatedDateUTC")
                oldest = updated if oldest is None or updated < oldest else oldest
                newest = updated if newest is None or updated > newest else newest
                second = updated.replace(microsecond=0)
                if second == overlap and str(record[ID_FIELDS[resource]]) in counted:
                    continue
                last_second.setdefault(second, set()).add(str(record[ID_FIELDS[resource]]))
                counts[_classify(connection_id, resource, record, updated, links, snapshots, config)] += 1
            if newest is not None:
                counted = last_second.get(newest.replace(microsecond=0), set())
            if on_page is not None:
                on_page(resource, len(page.items))
            if not page.has_more or not page.items:
                break
            anchor, page_number = next_position(anchor, page_number, oldest, newest,
                                                len(counted) if newest is not None else 0)
        report.create[resource], report.update[resource], report.skip[resource] = (
            counts["create"], counts["update"], counts["skip"])
        writes = counts["create"] + counts["update"]
        # Contacts write an Account and its Contacts; the others re-write the invoices they touch.
        modules = 2 if resource == "contacts" else 1
        report.zoho_calls += modules * math.ceil(writes / ZOHO_RECORDS_PER_WRITE)
    return report


def _list_when_allowed(xero, resource: str, wait, **query):
    """One page; while a rate limit (ours or Xero's) holds it, wait it out and ask again."""
    while True:
        try:
            return xero.list_records(resource, **query)
        except RateLimited as exc:
            wait(problem_scope(exc.problem), exc.retry_after)


@dataclass
class RealBackfillCost:
    """What the backfill a dry run previewed would take at the budget of the moment."""

    xero_calls: int
    calls_per_day: int  # its own budget, within the governor's share of Xero's day for backfills
    left_today: int  # of that, what the rolling 24 hours still allow now
    days: int  # 24-hour windows it spans: today's, then one per ``calls_per_day`` calls

    def as_dict(self) -> dict:
        return {"xero_calls": self.xero_calls, "calls_per_day": self.calls_per_day, "left_today": self.left_today,
                "days": self.days}


def real_backfill_cost(xero_calls: int, *, day_limit: int, day_used: int, calls_per_day: int | None,
                       backfill_used: int) -> RealBackfillCost:
    """The calls and days a real backfill of ``xero_calls`` pages takes: at most the governor's share of the
    organisation's day (``day_used`` of ``day_limit`` already spent), and at most ``calls_per_day`` of its
    own (``backfill_used`` spent). Live traffic shares that day too: the days are the fewest it can take."""
    share = day_share(day_limit, PRIORITY_BACKFILL)
    per_day = share if calls_per_day is None else min(calls_per_day, share)
    left = day_share_left(day_limit, day_used, PRIORITY_BACKFILL)
    if calls_per_day is not None:
        left = min(left, max(calls_per_day - backfill_used, 0))
    if xero_calls <= 0:
        days = 0
    elif xero_calls <= left:
        days = 1
    else:
        days = 1 + math.ceil((xero_calls - left) / per_day)
    return RealBackfillCost(xero_calls=xero_calls, calls_per_day=per_day, left_today=left, days=days)


def _classify(connection_id, resource, record, updated, links, snapshots, config) -> str:
    xero_id = str(record[ID_FIELDS[resource]])
    if resource == "contacts":
        link = links.get(connection_id, "contact", xero_id)
        if link is None:
            return "create"
        # The Account as a push would write it: with the money figures of the customer's stored documents.
        mapped = map_contact_as_pushed(snapshots, connection_id, record, config,
                                       today=datetime.now(timezone.utc).date())
        account, _ = zoho_contact_records(mapped, record, config)
        return "skip" if link.content_hash == content_hash(account) else "update"
    if resource == "invoices":
        link = links.get(connection_id, "invoice", xero_id)
        if link is None:
            return "create"
        return "skip" if link.source_updated_at and link.source_updated_at >= updated else "update"
    # Payments and credit notes have no Zoho record of their own: they update the invoices they touch.
    previous = snapshots.get(connection_id, resource, xero_id)
    return "skip" if is_known(previous, updated, record) else "update"
