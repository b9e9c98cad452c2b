"""The app-wide webhook sequence the schedule keeps in Redis (ScheduleState.note_sequence): each delivery
learns the highest sequence seen before it, and the highest is kept whatever order deliveries arrive in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from connector.schedule_state import ScheduleState
from tests.conftest import redis_db, require_redis


def test_each_delivery_gets_the_highest_sequence_seen_before_it():
    client = require_redis(redis_db("ratelimit"))
    state = ScheduleState(client)
    assert state.note_sequence(0, 0) is None  # an intent-to-receive probe: nothing seen yet
    assert client.get("schedule:xero:last-sequence") == "0"
    assert state.note_sequence(1, 20) == 0
    assert state.note_sequence(41, 60) == 20  # 21..40 not seen: the caller sees the gap
    assert state.note_sequence(21, 40) == 60  # late, out of order: the highest stays
    assert state.note_sequence(61, 61) == 60
    assert client.get("schedule:xero:last-sequence") == "61"


def test_a_first_negative_sequence_is_stored_as_zero():
    client = require_redis(redis_db("ratelimit"))
    assert ScheduleState(client).note_sequence(-3, -2) is None
    assert client.get("schedule:xero:last-sequence") == "0"


def test_deliveries_noted_at_once_keep_the_highest():
    client = require_redis(redis_db("ratelimit"))
    state = ScheduleState(client)
    lasts = list(range(20, 4020, 20))
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda last: state.note_sequence(last - 19, last), reversed(lasts)))
    assert client.get("schedule:xero:last-sequence") == str(max(lasts))
    assert seen.count(None) == 1 and max(s for s in seen if s is not None) <= max(lasts)
