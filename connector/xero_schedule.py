"""When to spend Xero calls on scheduled work: pure functions, state and clock in, decision out.

Contacts, invoices and credit notes arrive by webhook. Xero retries a delivery that was not answered 200
"with decreasing frequency" for up to 24 hours, then disables the subscription until it is re-enabled
in the developer portal; events of the disabled time are not sent again
(https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/). Each delivery
carries ``firstEventSequence`` and ``lastEventSequence``, the sequence numbers of its first and last
events (https://developer.xero.com/documentation/guides/webhooks/overview/); that they rise by one
per event across the app's deliveries, with no reuse, is UNVERIFIED (the sandbox numbers them so).
So a catch-up poll is needed only when something says a delivery went missing:

- a gap: a delivery starts past the last sequence seen plus one (after a short grace, for a
  delivery that arrives out of order);
- an outage: a change the connector wrote to Xero was not echoed by a webhook within the echo
  timeout (our receiver or Xero's sending is down), or deliveries arrive late (Xero was retrying, or
  the workers are behind): their events are older than the backlog lag;
- a receiver outage: the probe of our public /healthz (connector/receiver_probe.py) found the receiver
  back after an outage; Xero's retries may have given up meanwhile, and a write-back echo is missed only
  where something was written;
- and a rare safety poll, within the day's scheduled share.

Payments have no webhook. Whether applying one raises an INVOICE UPDATE event is not documented
(UNVERIFIED); the connector notices it in a live organisation (a payment first seen in a
webhook-driven invoice fetch) and then polls payments only at the longest delay, a safety net.
Otherwise it polls often while open invoices (AUTHORISED, AmountDue > 0) changed recently and at the
longest delay when none did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

HOUR = 3600.0
CATCH_UP_RESOURCES = ("contacts", "invoices", "creditnotes")
PAYMENT_RESOURCES = ("payments",)
# Overpayments and prepayments have no webhooks either and change a customer's credit available. The payments
# poll lists them too (a call each) while open invoices changed recently, when credit is received and
# allocated; otherwise at most every ``credits_max_delay``, so an idle organisation pays 2 calls a day for them.
CREDIT_RESOURCES = ("overpayments", "prepayments")
CHECK_RESOURCES = ("contacts",)

GAP = "sequence_gap"
ECHO_MISSING = "webhook_echo_missing"
LATE_DELIVERY = "late_delivery"
RECEIVER_OUTAGE = "receiver_outage"
SAFETY = "safety"


@dataclass(frozen=True)
class SchedulePolicy:
    safety_interval: float = 8 * HOUR  # catch-up poll when nothing triggered one
    trigger_grace: float = 120.0  # a gap may still fill with an out-of-order delivery
    echo_timeout: float = 600.0
    backlog_lag: float = 600.0
    payments_min_interval: float = 300.0  # while open invoices changed recently
    payments_max_delay: float = 1800.0  # the longest a payment may wait (PAYMENTS_MAX_DELAY)
    credits_max_delay: float = 24 * HOUR  # the longest an overpayment or prepayment waits in an idle organisation
    hot_window: float = 2 * HOUR
    check_interval: float = 7 * 24 * HOUR  # the contact consistency check (balances, IsCustomer...)


@dataclass(frozen=True)
class OrgSchedule:
    """What the schedule knows of one organisation (epoch seconds; None: never)."""

    triggers: dict[str, float] = field(default_factory=dict)  # reason -> when first raised
    last_catch_up: float | None = None
    last_payments_poll: float | None = None
    last_credits_poll: float | None = None  # overpayments and prepayments
    payments_seen_via_invoice: float | None = None  # last payment first seen in an invoice fetch
    open_invoices: int = 0
    open_changed_at: float | None = None
    last_webhook_at: float | None = None
    last_write_back_at: float | None = None
    last_check: float | None = None

    @property
    def payments_raise_invoice_webhooks(self) -> bool:
        return self.payments_seen_via_invoice is not None


@dataclass(frozen=True)
class Decision:
    purpose: str  # catch_up | payments | check
    resources: tuple[str, ...]
    reason: str


def sequence_gap(last_seen: int | None, first: int, last: int) -> bool:
    """True when a delivery starts past the next sequence expected. Intent-to-receive probes carry 0."""
    if first <= 0 or last_seen is None:
        return False
    return first > last_seen + 1


def delivery_is_late(event_dates: list[datetime], received: float, policy: SchedulePolicy) -> bool:
    """Events (``eventDateUtc``, UTC) that reach the worker later than the backlog lag."""
    if not event_dates:
        return False
    oldest = min(d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in event_dates)
    return received - oldest.timestamp() > policy.backlog_lag


def catch_up_due(state: OrgSchedule, policy: SchedulePolicy, now: float, allowance: int | None = None
                 ) -> Decision | None:
    if state.triggers:
        if now >= min(state.triggers.values()) + policy.trigger_grace:
            return Decision("catch_up", CATCH_UP_RESOURCES, ",".join(sorted(state.triggers)))
        return None
    wrote = state.last_write_back_at
    if (wrote is not None and now - wrote >= policy.echo_timeout
            and (state.last_webhook_at is None or state.last_webhook_at < wrote)
            and (state.last_catch_up is None or state.last_catch_up < wrote)):
        return Decision("catch_up", CATCH_UP_RESOURCES, ECHO_MISSING)
    if state.last_catch_up is None or now - state.last_catch_up >= policy.safety_interval:
        return Decision("catch_up", CATCH_UP_RESOURCES, SAFETY)
    return None


def shortest_payments_interval(policy: SchedulePolicy, allowance: int | None) -> float:
    """The payment poll's shortest interval: the setting, lengthened so that a whole day of it fits in the
    scheduled share (``allowance`` calls a day) beside the catch-up and check polls."""
    if allowance is None:
        return policy.payments_min_interval
    others = len(CATCH_UP_RESOURCES) * 24 * HOUR / policy.safety_interval + 24 * HOUR / policy.check_interval
    # While invoices are hot a poll lists payments, overpayments and prepayments: a call each.
    polls = max((allowance - others) / len(PAYMENT_RESOURCES + CREDIT_RESOURCES), 1.0)
    return min(max(policy.payments_min_interval, 24 * HOUR / polls), policy.payments_max_delay)


def payments_interval(state: OrgSchedule, policy: SchedulePolicy, now: float,
                      allowance: int | None = None) -> tuple[float, str]:
    """How long payments may go unpolled now, and why (``allowance``: scheduled calls a day, if known)."""
    if state.payments_raise_invoice_webhooks:
        return policy.payments_max_delay, "payments raise invoice webhooks"
    hot = state.open_changed_at is not None and now - state.open_changed_at <= policy.hot_window
    if state.open_invoices > 0 and hot:
        return shortest_payments_interval(policy, allowance), "open invoices changed recently"
    return policy.payments_max_delay, "no open invoice changed recently"


def payments_due(state: OrgSchedule, policy: SchedulePolicy, now: float,
                 allowance: int | None = None) -> Decision | None:
    interval, why = payments_interval(state, policy, now, allowance)
    looked = state.last_payments_poll
    if state.payments_raise_invoice_webhooks and state.payments_seen_via_invoice is not None:
        # A payment just seen through an invoice fetch: that fetch already showed what the poll would.
        looked = max(looked or 0.0, state.payments_seen_via_invoice)
    if looked is None or now - looked >= interval:
        hot = state.open_invoices > 0 and state.open_changed_at is not None and (
            now - state.open_changed_at <= policy.hot_window)
        credits_stale = state.last_credits_poll is None or now - state.last_credits_poll >= policy.credits_max_delay
        return Decision("payments", PAYMENT_RESOURCES + (CREDIT_RESOURCES if hot or credits_stale else ()), why)
    return None


def check_due(state: OrgSchedule, policy: SchedulePolicy, now: float, allowance: int | None = None
              ) -> Decision | None:
    if state.last_check is None or now - state.last_check >= policy.check_interval:
        return Decision("check", CHECK_RESOURCES, "consistency check")
    return None


def is_open(invoice: dict) -> bool:
    """An invoice a payment can still arrive for: AUTHORISED with an amount due."""
    try:
        due = float(invoice.get("AmountDue") or 0)
    except (TypeError, ValueError):
        due = 0.0
    return invoice.get("Status") == "AUTHORISED" and due > 0 and invoice.get("Type", "ACCREC") == "ACCREC"


@dataclass(frozen=True)
class InvoiceSighting:
    open_ids: frozenset[str]
    closed_ids: frozenset[str]
    payment_ids: frozenset[str]  # every payment the invoices show
    recent_payment_ids: frozenset[str]  # of those, dated within the last two days


def _payment_date(payment: dict) -> datetime | None:
    raw = str(payment.get("Date") or "")
    if raw.startswith("/Date("):  # Xero's MS JSON date: /Date(1718928000000+0000)/
        digits = raw[6:].split("+")[0].split("-")[0].rstrip(")/")
        try:
            return datetime.fromtimestamp(int(digits) / 1000, tz=timezone.utc)
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def sight_invoices(invoices: list[dict], now: float) -> InvoiceSighting:
    """What fetched invoices say about payments: which are open, and which payments they show (a payment
    dated within the last two days is new enough to tell whether its invoice's webhook came for it)."""
    open_ids = frozenset(i["InvoiceID"] for i in invoices if is_open(i))
    closed_ids = frozenset(i["InvoiceID"] for i in invoices if not is_open(i))
    payments = [p for i in invoices for p in (i.get("Payments") or []) if p.get("PaymentID")]
    since = datetime.fromtimestamp(now, tz=timezone.utc) - timedelta(days=2)
    recent = frozenset(p["PaymentID"] for p in payments if (d := _payment_date(p)) is not None and d >= since)
    return InvoiceSighting(open_ids, closed_ids, frozenset(p["PaymentID"] for p in payments), recent)
