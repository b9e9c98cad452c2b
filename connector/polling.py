"""Delta polling: what webhooks missed, and payments, overpayments and prepayments (which have no webhooks).

Per connection and resource, ``poll_resource`` lists records changed since its cursor with
If-Modified-Since, ordered by UpdatedDateUTC, up to 1,000 a page
(https://developer.xero.com/documentation/api/accounting/invoices), always passing ``page`` (unpaged invoice
lists omit LineItems). Listed records are complete, so they go straight into snapshots with no
second GET, a page at a time (connector/listed_pages.py). The cursor moves forward page by page, so an
interrupted poll resumes where it stopped.

If-Modified-Since is matched to the second and means "after", so the request asks from one
second before the cursor; records seen again are recognised (same UpdatedDateUTC, same content)
and not handed on. A full sweep (no If-Modified-Since) catches changes that do not bump
UpdatedDateUTC, such as contact balances (Xero's requests-and-responses page), handing on only
records whose content changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from connector.listed_pages import is_known, store_listed_page

log = logging.getLogger(__name__)

POLLED_RESOURCES = ("contacts", "invoices", "creditnotes", "payments", "overpayments", "prepayments")
# Resources whose full sweep finds changes If-Modified-Since cannot (derived balances).
SWEPT_RESOURCES = ("contacts",)
MAX_PAGE_SIZE = 1000
# If-Modified-Since is to the second: ask from a second earlier so nothing in the cursor's own
# second is missed; what comes back twice is recognised as unchanged.
CURSOR_OVERLAP = timedelta(seconds=1)
ORDER = "UpdatedDateUTC ASC"

OnChanged = Callable[[list[str], dict[str, str]], None]


@dataclass
class PollOutcome:
    resource: str
    pages: int = 0
    listed: int = 0
    changed: list[str] = field(default_factory=list)
    cursor: datetime | None = None


def _is_news(previous, updated: datetime, record: dict) -> bool:
    return not is_known(previous, updated, record)


def poll_resource(connection_id: int, resource: str, *, xero, cursors, snapshots, audit, on_changed: OnChanged,
                  full_sweep: bool = False, page_size: int = MAX_PAGE_SIZE, max_pages: int | None = None,
                  before_page: Callable[[], None] | None = None) -> PollOutcome:
    """List what changed since the cursor (everything, for a full sweep); store it and hand on the news.

    A RateLimited from the client propagates: the cursor already holds every finished page. So does
    whatever ``before_page`` raises (the task renews its poll lease there, and stops when it lost it).
    """
    cursor = cursors.get(connection_id, resource).modified_since
    since = None if full_sweep or cursor is None else cursor - CURSOR_OVERLAP
    outcome = PollOutcome(resource=resource, cursor=cursor)
    page_number = 1
    while max_pages is None or outcome.pages < max_pages:
        if before_page is not None:
            before_page()
        page = xero.list_records(resource, modified_since=since, page=page_number, page_size=page_size, order=ORDER)
        outcome.pages += 1
        stored = store_listed_page(connection_id, resource, page.items, snapshots=snapshots, audit=audit,
                                   source="full_sweep" if full_sweep else "poll", wanted=_is_news)
        changed, newest = stored.handed, stored.newest
        outcome.listed += len(page.items)
        if newest is not None:
            cursors.advance(connection_id, resource, newest)
            outcome.cursor = max(newest, outcome.cursor) if outcome.cursor else newest
        if changed:
            outcome.changed += list(changed)
            on_changed(list(changed), changed)
        if not page.has_more or not page.items:
            break
        page_number += 1
    cursors.mark_polled(connection_id, resource, full_sweep=full_sweep)
    log.info("polling.xero.done", extra={"connection_id": connection_id, "resource": resource,
                                         "listed": outcome.listed, "changed": len(outcome.changed)})
    return outcome
