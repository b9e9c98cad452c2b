"""The receiver probe as beat runs it (``connector.probe_receiver``), against the real receiver served over HTTP
on a port of its own (stopped, then served again on the same port), real Redis and PostgreSQL, on a simulated
clock: a receiver back after an outage raises one catch-up trigger per active connection, which the planner
turns into a catch-up poll; a receiver never reachable is reported and polled for never."""

from __future__ import annotations

import logging

import pytest

from connector.receiver_probe import NEVER_REACHABLE, REACHABLE, UNREACHABLE
from connector.sandbox.common import serve
from connector.status import receiver_probe as probe_status
from connector.xero_schedule import RECEIVER_OUTAGE
from tests.processes import free_port
from tests.reliability.test_planned_polls import plan_and_run, simulated_world
from workers.cli_ops import describe_receiver_probe

MINUTE = 60.0


class Receiver:
    """The real receiver app (webhooks.create_app, /healthz answering from Redis), served at a fixed port so it
    can stop and come back where the public URL says."""

    def __init__(self, deps, port: int) -> None:
        from webhooks import create_app

        self.app = create_app(webhook_key="probe-test-key", enqueue=lambda *a, **k: None,
                              zoho_channels=deps.store.channels, liveness={"redis": deps.redis.ping})
        self.port = port
        self.served = None

    def start(self) -> None:
        self.served = serve(self.app, port=self.port, quiet=True)

    def stop(self) -> None:
        if self.served is not None:
            self.served.shutdown()
            self.served = None


@pytest.fixture
def probed(make_system):
    """A world whose public URL is a receiver this test starts and stops."""
    port = free_port()
    world, clock = simulated_world(lambda **o: make_system(public_url=f"http://127.0.0.1:{port}", **o))
    receiver = Receiver(world.deps, port)
    yield world, clock, receiver
    receiver.stop()


def probe() -> str:
    from workers.schedule_tasks import probe_receiver

    return probe_receiver.run()


def reachable_gauge(world) -> float | None:
    """The /metrics gauge of the receiver probe, as a scrape reads it (None: not exposed)."""
    from connector.metrics import SharedStateCollector

    for family in SharedStateCollector(world.deps, queue_depths=lambda settings: None).collect():
        if family.name == "connector_receiver_reachable":
            [sample] = family.samples
            return sample.value
    return None


def triggers(world, connection_id: int | None = None) -> dict:
    return world.deps.schedule_state.load(connection_id or world.connection_id).triggers


def test_a_receiver_back_after_an_outage_raises_one_catch_up_per_connection_and_the_planner_runs_it(
        probed, published, caplog):
    world, clock, receiver = probed
    other_id, _ = world.connect("Other Ltd")
    plan_and_run(published)  # the first look of a new organisation: done, nothing due after it
    plan_and_run(published)
    receiver.start()
    assert probe() == REACHABLE
    clock.advance(MINUTE)
    assert probe() == REACHABLE

    receiver.stop()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            clock.advance(MINUTE)
            assert probe() == UNREACHABLE
        assert triggers(world) == {} and plan_and_run(published) == []  # nothing while it is down
        assert "UNREACHABLE at http://127.0.0.1" in describe_receiver_probe(probe_status(world.deps))
        assert reachable_gauge(world) == 0.0

        receiver.start()
        clock.advance(MINUTE)
        assert probe() == REACHABLE
        raised_at = clock.time()
        for connection_id in (world.connection_id, other_id):
            assert triggers(world, connection_id) == {RECEIVER_OUTAGE: raised_at}
        for _ in range(3):  # the next probes raise nothing more
            clock.advance(MINUTE / 2)
            assert probe() == REACHABLE
    assert triggers(world) == {RECEIVER_OUTAGE: raised_at}
    messages = [r.getMessage() for r in caplog.records if r.name == "connector.receiver_probe"]
    assert messages == ["receiver.probe.unreachable", "receiver.probe.recovered"]
    assert world.deps.receiver_probe.load().catch_up_owed is None  # settled once raised

    # The planner runs it after the schedule's grace (Xero's retries may still come meanwhile), once.
    clock.advance(world.deps.schedule_policy.trigger_grace - 3 * MINUTE / 2)
    assert sorted(plan_and_run(published)) == ["catch_up", "catch_up"]
    assert triggers(world) == {} and triggers(world, other_id) == {}
    clock.advance(MINUTE)
    assert probe() == REACHABLE and plan_and_run(published) == []
    status = probe_status(world.deps)
    assert status["state"] == REACHABLE and status["last_outage"]["seconds"] == 180
    assert status["url"] == f"http://127.0.0.1:{receiver.port}/healthz"
    assert reachable_gauge(world) == 1.0
    line = describe_receiver_probe(status)
    assert line.startswith(f"reachable at {status['url']} since ") and "(180 s; catch-up raised)" in line


def test_a_single_failed_probe_raises_no_catch_up(probed, published):
    world, clock, receiver = probed
    receiver.start()
    assert probe() == REACHABLE
    receiver.stop()
    clock.advance(MINUTE)
    assert probe() == UNREACHABLE
    receiver.start()
    clock.advance(MINUTE)
    assert probe() == REACHABLE
    assert triggers(world) == {}


def test_a_receiver_never_reachable_is_reported_and_never_polled_for(probed, published, caplog):
    world, clock, receiver = probed
    plan_and_run(published)
    with caplog.at_level(logging.WARNING, logger="connector.receiver_probe"):
        for _ in range(15):
            assert probe() == NEVER_REACHABLE
            clock.advance(MINUTE)
    [warning] = [r for r in caplog.records if r.name == "connector.receiver_probe"]
    assert warning.getMessage() == "receiver.probe.never_reachable"
    assert warning.url == f"http://127.0.0.1:{receiver.port}/healthz" and "CONNECTOR_PUBLIC_URL" in warning.check
    assert triggers(world) == {}
    line = describe_receiver_probe(probe_status(world.deps))
    assert line.startswith(f"NEVER REACHABLE at http://127.0.0.1:{receiver.port}/healthz: 15 probes failed")
    # Only the receiver's incident is this test's: a worker that ran a task in this process before the clock moved
    # 15 minutes may be reported silent too.
    report = world.deps.check_alerts()
    assert report is not None and "receiver_unreachable" in report.open
    assert ("opened", "receiver_unreachable") in report.sent
    # Fixed at last: it answers; nothing says a delivery was missed, so no catch-up; the incident resolves.
    receiver.start()
    assert probe() == REACHABLE and triggers(world) == {}
    report = world.deps.check_alerts()
    assert "receiver_unreachable" not in report.open and ("resolved", "receiver_unreachable") in report.sent


def test_nothing_is_probed_with_the_probe_switched_off(make_system, published):
    port = free_port()
    world, clock = simulated_world(lambda **o: make_system(public_url=f"http://127.0.0.1:{port}", receiver_probe=False,
                                                           **o))
    receiver = Receiver(world.deps, port)
    receiver.start()
    try:
        assert probe() == "not_probed"
        assert probe_status(world.deps) == {"probed": False, "url": f"http://127.0.0.1:{port}/healthz",
                                            "state": "not_probed", "reason": "CONNECTOR_RECEIVER_PROBE=off"}
        assert world.deps.receiver_probe.load().last_probe is None and reachable_gauge(world) is None
    finally:
        receiver.stop()
