"""The Xero schedule's state per organisation, in Redis (every worker and beat share it).

The decisions are connector/xero_schedule.py's pure functions; this module only reads and writes what
they need: triggers raised by webhook intake, when each kind of scheduled work last ran, open invoices
and payments seen.
"""

from __future__ import annotations

from connector.clock import SYSTEM_CLOCK, Clock
from connector.xero_schedule import InvoiceSighting, OrgSchedule

DAY = 86400

# The highest sequence seen: KEYS[1] holds it; ARGV[1] is the delivery's last sequence, ARGV[2] what to store
# when nothing is (the last sequence, or 0 if below). Returns what was there before.
_NOTE_SEQUENCE = """
local previous = redis.call('GET', KEYS[1])
if not previous then
    redis.call('SET', KEYS[1], ARGV[2])
elseif tonumber(ARGV[1]) > tonumber(previous) then
    redis.call('SET', KEYS[1], ARGV[1])
end
return previous
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value) -> float | None:
    return None if value is None else float(_text(value))


class ScheduleState:
    def __init__(self, redis, *, clock: Clock | None = None, key_prefix: str = "schedule:xero") -> None:
        self._redis = redis
        self._clock = clock or SYSTEM_CLOCK
        self._prefix = key_prefix
        self._note_sequence = redis.register_script(_NOTE_SEQUENCE)

    def _key(self, connection_id: int, name: str) -> str:
        return f"{self._prefix}:{{{connection_id}}}:{name}"

    def load(self, connection_id: int, *, last_write_back_at: float | None = None) -> OrgSchedule:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._key(connection_id, "triggers"))
        pipe.hgetall(self._key(connection_id, "times"))
        pipe.scard(self._key(connection_id, "open"))
        triggers, times, open_count = pipe.execute()
        times = {_text(k): float(_text(v)) for k, v in times.items()}
        return OrgSchedule(
            triggers={_text(k): float(_text(v)) for k, v in triggers.items()},
            last_catch_up=times.get("catch_up"), last_payments_poll=times.get("payments"),
            last_credits_poll=times.get("credits"),
            payments_seen_via_invoice=times.get("payments_seen_via_invoice"), open_invoices=int(open_count),
            open_changed_at=times.get("open_changed"), last_webhook_at=times.get("webhook"),
            last_write_back_at=last_write_back_at, last_check=times.get("check"))

    def _set_time(self, connection_id: int, name: str, at: float | None = None) -> None:
        self._redis.hset(self._key(connection_id, "times"), name, repr(self._clock.time() if at is None else at))

    # -- what webhook intake reports -----------------------------------------------------------

    def raise_trigger(self, connection_id: int, reason: str) -> None:
        """Ask for a catch-up poll; the first time a reason is raised is kept until a catch-up clears it."""
        self._redis.hsetnx(self._key(connection_id, "triggers"), reason, repr(self._clock.time()))

    def note_webhook(self, connection_id: int) -> None:
        self._set_time(connection_id, "webhook")

    def note_sequence(self, first: int, last: int) -> int | None:
        """Record a delivery's sequences (app-wide); returns the last sequence seen before it. One atomic
        script (a read and a conditional write in one round trip, where WATCH/GET/MULTI/SET/EXEC took five
        and started again whenever another worker's delivery came between)."""
        seen = self._note_sequence(keys=[f"{self._prefix}:last-sequence"], args=[str(last), str(max(last, 0))])
        return int(_text(seen)) if seen is not None else None

    def note_invoices(self, connection_id: int, sighting: InvoiceSighting, *, webhook_driven: bool) -> bool:
        """Record open invoices and payments that fetched invoices show. Returns True when a webhook-driven
        fetch showed a recent payment not seen before: this organisation's payments raise invoice events."""
        open_key, known_key = self._key(connection_id, "open"), self._key(connection_id, "payments")
        pipe = self._redis.pipeline(transaction=False)
        if sighting.open_ids:
            pipe.sadd(open_key, *sighting.open_ids)
        if sighting.closed_ids:
            pipe.srem(open_key, *sighting.closed_ids)
        recent = sorted(sighting.recent_payment_ids)
        for payment_id in recent:
            pipe.sismember(known_key, payment_id)
        results = pipe.execute()
        known_flags = results[len(results) - len(recent):] if recent else []
        if sighting.open_ids:
            self._set_time(connection_id, "open_changed")
        if sighting.payment_ids:
            self._redis.sadd(known_key, *sighting.payment_ids)
        first_seen_here = webhook_driven and any(not flag for flag in known_flags)
        if first_seen_here:
            self._set_time(connection_id, "payments_seen_via_invoice")
        return first_seen_here

    def note_payments(self, connection_id: int, payment_ids: list[str]) -> None:
        if payment_ids:
            self._redis.sadd(self._key(connection_id, "payments"), *payment_ids)

    # -- what scheduled work reports -----------------------------------------------------------

    def credits_polled(self, connection_id: int, started_at: float) -> None:
        """Overpayments and prepayments were listed by a poll that began at ``started_at``."""
        self._set_time(connection_id, "credits", started_at)

    def done(self, connection_id: int, purpose: str, started_at: float) -> None:
        """Scheduled work of ``purpose`` finished; a catch-up clears the triggers raised before it began."""
        self._set_time(connection_id, purpose, started_at)
        if purpose == "catch_up":
            key = self._key(connection_id, "triggers")
            for reason, raised in self._redis.hgetall(key).items():
                if float(_text(raised)) <= started_at:
                    self._redis.hdel(key, reason)
