from datetime import timedelta

from connector.clock import ManualClock
from connector.store import Store
from connector.store.parked import DAILY_BUDGET, NEEDS_REAUTH


def take(parked, connection_id: int) -> dict[str, list]:
    """Hand over whatever is due, grouped by resource (as a resume that queued it successfully)."""
    taken: dict[str, list] = {}
    parked.hand_over(connection_id, lambda items: [taken.setdefault(p.resource, []).append(p) for p in items])
    return taken


def test_parked_work_waits_until_its_time_and_is_taken_once(store: Store) -> None:
    clock = ManualClock()
    parked = type(store.parked)(store.sessions, clock=clock)
    conn = store.connections.create(name="A", xero_tenant_id="t-parked-1")
    parked.park(conn.id, "invoices", ["i1", "i2", "i1"], reason=DAILY_BUDGET,
                resume_after=clock.now() + timedelta(hours=3), priority=0, sync_ids={"i1": "s1"})
    parked.park(conn.id, "contacts", ["c1"], reason=NEEDS_REAUTH)

    assert parked.count(conn.id) == 3
    assert parked.count(reason=DAILY_BUDGET) == 2
    due_now = take(parked, conn.id)
    assert [p.record_id for p in due_now["contacts"]] == ["c1"]
    assert "invoices" not in due_now
    assert take(parked, conn.id) == {}  # taken once

    clock.advance(timedelta(hours=3))
    later = take(parked, conn.id)
    assert sorted(p.record_id for p in later["invoices"]) == ["i1", "i2"]
    assert {p.record_id: p.sync_id for p in later["invoices"]} == {"i1": "s1", "i2": None}
    assert parked.count() == 0


def test_parking_again_updates_the_reason_and_keeps_one_row(store: Store) -> None:
    conn = store.connections.create(name="B", xero_tenant_id="t-parked-2")
    store.parked.park(conn.id, "contacts", ["c1"], reason=DAILY_BUDGET,
                      resume_after=store.clock.now() + timedelta(days=1))
    store.parked.park(conn.id, "contacts", ["c1"], reason=NEEDS_REAUTH)
    assert store.parked.count(conn.id) == 1
    assert store.parked.connections_with_due_work() == [conn.id]
    [taken] = take(store.parked, conn.id)["contacts"]
    assert taken.reason == NEEDS_REAUTH
