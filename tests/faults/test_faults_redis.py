"""Redis restarts mid-burst: the receiver answers 503 while it cannot queue and 200 only for what it
queued (Xero delivers a non-2xx again), the worker reconnects by itself, and nothing is lost."""

from __future__ import annotations

import pytest

from tests.faults.conftest import RECOVERY_SECONDS, deliver_until_accepted
from tests.processes import wait_for

pytestmark = pytest.mark.faults


@pytest.mark.timeout(RECOVERY_SECONDS + 180)
def test_redis_restart_mid_burst_loses_nothing_and_the_worker_reconnects_by_itself(org):
    stack = org.stack
    contacts = org.seed(contacts=30)["contact_ids"]
    # Fetches held open: the worker holds unacked messages (and the buffer's countdown flush) when Redis goes.
    stack.control.fault("xero", "latency", count=3, delay=3.0, path_prefix="/api.xro/2.0/Contacts", method="GET")
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}
    wait_for(lambda: stack.control.in_flight("xero", path_prefix="/api.xro/2.0/Contacts"), timeout=60,
             what="a Xero fetch in flight")
    worker_pid = stack.worker.pid
    mark = stack.worker.log_mark()

    stack.redis.stop()
    wait_for(lambda: "Connection to broker lost" in stack.worker.log_since(mark) or not stack.worker.alive(),
             timeout=60, what="the worker to notice the broker is gone")
    # More of the burst arrives while Redis is down: not queued, so not accepted.
    org.seed_invoices(contacts[:12])
    while_down = stack.control.deliver(stack.hook_url, max_events_per_post=5)
    assert while_down == [503], while_down
    assert stack.control.pending_webhooks() > 0, "what was answered 503 stays pending for redelivery"

    stack.redis.start()
    assert set(deliver_until_accepted(stack, max_events_per_post=5)) == {200}
    # The same worker process reconnects by itself (a dead one would leave the queue to nobody).
    wait_for(lambda: "Connected to redis://" in stack.worker.log_since(mark) or not stack.worker.alive(),
             timeout=60, what="the worker to reconnect")
    assert stack.worker.alive() and stack.worker.pid == worker_pid, \
        f"the worker did not survive the Redis restart:\n{stack.worker.tail(6000)}"
    org.assert_invariants(timeout=RECOVERY_SECONDS)
