"""Workers die mid-burst: SIGKILL of a pool process during a Xero fetch and during a Zoho write held open,
and SIGKILL of the worker's parent process. The deployment recovers by itself and nothing is lost or
doubled."""

from __future__ import annotations

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


@pytest.mark.timeout(600)  # the visibility timeout (at most 300 s) plus the burst
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

    stack.start_worker()  # the supervisor's restart
    org.assert_invariants(timeout=visibility_timeout + 90)
