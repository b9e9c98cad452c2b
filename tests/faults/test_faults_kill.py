"""Workers die mid-burst: SIGKILL of a pool process during a Xero fetch and during a Zoho write held open,
and SIGKILL of the worker's parent process. The deployment recovers by itself and nothing is lost or
doubled."""

from __future__ import annotations

import json
import os
import signal
from urllib.parse import urlsplit

import pytest

from tests.faults.conftest import RECOVERY_SECONDS, deliver_until_accepted
from tests.faults.harness import process_connected_to
from tests.processes import children_of, wait_for

pytestmark = pytest.mark.faults


def _port(url: str) -> int:
    return urlsplit(url).port


def _kill_the_child_calling(stack, system: str, path_prefix: str, method: str) -> int:
    """SIGKILL the worker pool process whose call to ``system`` is in flight right now."""
    port = _port(stack.control.xero_url if system == "xero" else stack.control.zoho_url)

    def caller() -> int | None:
        if not stack.control.in_flight(system, path_prefix=path_prefix, method=method):
            return None
        return process_connected_to(stack.worker.children(), port)

    child = wait_for(caller, timeout=90, interval=0.05, what=f"a worker process calling {system} {path_prefix}")
    os.kill(child, signal.SIGKILL)
    return child


@pytest.mark.timeout(RECOVERY_SECONDS + 180)
@pytest.mark.parametrize("system, path_prefix, method", [
    ("xero", "/api.xro/2.0/", "GET"),
    # The write is held open, and applied after the caller died (Zoho finishes what it received).
    ("zoho", "/crm/v8/", "POST"),
], ids=["during-a-xero-fetch", "during-a-zoho-write-held-open"])
def test_sigkill_of_a_worker_process(org, system, path_prefix, method):
    stack = org.stack
    stack.control.fault(system, "latency", count=2, delay=4.0, path_prefix=path_prefix, method=method)
    org.seed(contacts=30, invoices_per_contact=1)
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}

    killed = _kill_the_child_calling(stack, system, path_prefix, method)

    wait_for(lambda: killed not in stack.worker.children() and len(stack.worker.children()) >= 2, timeout=60,
             what="the worker to replace its killed pool process")
    org.assert_invariants(timeout=RECOVERY_SECONDS)
    assert stack.worker.alive()


def _visibility_timeout(stack) -> float:
    answer = stack.run_python("from workers.app import app; "
                              "print(app.conf.broker_transport_options.get('visibility_timeout', 3600))")
    return float(answer)


# kombu's Redis transport restores unacknowledged messages older than the visibility timeout when a worker
# starts, then on one call in ten of a 10 s timer (restore_visible, called by maybe_restore_messages:
# https://github.com/celery/kombu/blob/main/kombu/transport/redis.py): a held message comes back up to 100 s
# after its visibility timeout ran out.
RESTORE_CADENCE_SECONDS = 100.0


def _held_by_the_broker(stack) -> dict[str, str]:
    """The task messages delivered and not acknowledged: task id -> task name. kombu's Redis transport keeps each
    in its ``unacked`` hash (delivery tag -> [message, exchange, routing key]) until it is acknowledged or
    restored to its queue."""
    held = {}
    for raw in stack.redis.client().hgetall("unacked").values():
        message, _exchange, _routing_key = json.loads(raw)
        held[message["headers"]["id"]] = message["headers"]["task"]
    return held


@pytest.mark.timeout(600)  # the visibility timeout (at most 300 s), the restore cadence and the burst
def test_sigkill_of_the_worker_parent_mid_burst(org):
    stack = org.stack
    # Redis redelivers what a dead worker held only after the broker's visibility timeout: that bounds
    # how long records stay missing after a worker host dies, so it must be minutes, not an hour.
    visibility_timeout = _visibility_timeout(stack)
    assert visibility_timeout <= 300, f"visibility_timeout={visibility_timeout:.0f}s: a dead worker's tasks " \
                                      "would wait that long to be redelivered"
    stack.control.fault("xero", "latency", count=2, delay=4.0, path_prefix="/api.xro/2.0/", method="GET")
    org.seed(contacts=30, invoices_per_contact=1)
    assert set(deliver_until_accepted(stack, max_events_per_post=10)) == {200}
    wait_for(lambda: stack.control.in_flight("xero", path_prefix="/api.xro/2.0/"), timeout=90, interval=0.05,
             what="a Xero fetch in flight")

    parent = stack.worker.pid
    children = children_of(parent)
    os.kill(parent, signal.SIGKILL)
    stack.worker.proc.wait(timeout=10)
    # The host (container, dyno) goes with it: whatever pool process is left dies too.
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stack.worker.kill_group()
    # With no worker left, what the broker still counts as delivered and unacknowledged is what the dead one held
    # (acks_late: at least the task whose Xero fetch was in flight).
    held = _held_by_the_broker(stack)
    assert held, "the broker holds no unacknowledged message of the dead worker: nothing to redeliver"
    restarted_at = stack.worker.log_mark()

    stack.start_worker()  # the supervisor's restart
    org.assert_invariants(timeout=visibility_timeout + 90)
    # The records may come back first another way (the buffer sweep once a dead worker's lease lapses, or the
    # schedule's catch-up poll of a new connection): the proof of redelivery is that every message the dead
    # worker held is delivered to the restarted worker and runs there.
    def redelivered_and_run() -> bool:
        log = stack.worker.log_since(restarted_at)
        return (all(f"Task {name}[{task_id}] succeeded" in log for task_id, name in held.items())
                and not set(held) & set(_held_by_the_broker(stack)))  # and acknowledged

    wait_for(redelivered_and_run, timeout=visibility_timeout + RESTORE_CADENCE_SECONDS + 60, interval=1.0,
             what=f"the dead worker's unacknowledged messages ({held}) to be redelivered and run")
