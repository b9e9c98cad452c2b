"""/metrics on a real deployment: the Procfile's web (gunicorn, two workers) and worker (Celery prefork)
processes, each with its own multiprocess folder, synced webhooks end to end; the scraped counters (parsed from
the text format) add up, across the processes, to what the audit trail and the Xero sandbox say."""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from connector import call_purpose
from connector.store import audit as stages
from connector.store.db import session_scope
from connector.store.tables import AuditEvent
from tests.processes import free_port, procfile, wait_for_http
from workers.embedded import wait_until

pytestmark = pytest.mark.integration

CONTACTS = 6


def scrape(url: str, **request) -> dict[str, list[tuple[dict, float]]]:
    answer = requests.get(url, timeout=10, **request)
    assert answer.status_code == 200, answer.text[:500]
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(value for found, value in samples.get(name, []) if all(found.get(k) == v for k, v in labels.items()))


def audited_outcomes(deployment) -> Counter:
    """(record type, stage) -> rows of the connection's trail that are outcomes."""
    statement = (select(AuditEvent.record_type, AuditEvent.stage, func.count())
                 .where(AuditEvent.connection_id == deployment.connection_id,
                        AuditEvent.stage.in_((stages.WRITTEN, stages.SKIPPED, stages.FAILED, stages.PARKED)))
                 .group_by(AuditEvent.record_type, AuditEvent.stage))
    with session_scope(deployment.deps.store.sessions) as session:
        return Counter({(record_type, stage): n for record_type, stage, n in session.execute(statement)})


def scraped_outcomes(samples, connection: str) -> Counter:
    names = {"written": "synced", "skipped": "skipped", "failed": "failed", "parked": "parked"}
    counts = Counter()
    for stage, name in names.items():
        for labels, value in samples.get(f"connector_records_{name}_total", []):
            if labels["connection"] == connection and value:
                counts[(labels["type"], stage)] += int(value)
    return counts


def test_metrics_add_up_across_two_gunicorn_workers_and_a_prefork_worker(deployment, tmp_path):
    commands = procfile()
    assert deployment.run(commands["release"]).returncode == 0
    deployment.connect()
    cid = str(deployment.connection_id)
    token = deployment.env["CONNECTOR_ADMIN_TOKEN"]
    metrics_base = tmp_path / "metrics"
    gone = metrics_base / "web-999999999"  # a folder of a receiver gone (no such pid): removed at start
    gone.mkdir(parents=True)
    (gone / "counter_1.db").write_bytes(b"from a process before the restart")

    web_port, worker_metrics_port = free_port(), free_port()
    assert "--workers 2" in commands["web"]
    web = deployment.start("web", commands["web"], PORT=str(web_port), CONNECTOR_METRICS_DIR=str(metrics_base))
    # Two prefork children instead of four: the same pool, less for two cores to start.
    worker = deployment.start("worker", commands["worker"].replace("--concurrency 4", "--concurrency 2 --pool prefork"),
                              CONNECTOR_METRICS_DIR=str(metrics_base),
                              CONNECTOR_METRICS_PORT=str(worker_metrics_port))
    base = f"http://127.0.0.1:{web_port}"
    assert wait_for_http(f"{base}/healthz", timeout=60, process=web).status_code == 200
    worker_url = f"http://127.0.0.1:{worker_metrics_port}/metrics"
    assert wait_for_http(worker_url, timeout=60, process=worker).status_code == 200, worker.tail(4000)
    assert not gone.exists()
    # One folder per process group, named by its owner: the gunicorn master's, the Celery main process's.
    assert sorted(p.name for p in metrics_base.iterdir()) == [f"web-{web.pid}", f"worker-{worker.pid}"]
    web_dir, worker_dir = metrics_base / f"web-{web.pid}", metrics_base / f"worker-{worker.pid}"

    # /metrics is an operator route: no token, no metrics.
    assert requests.get(f"{base}/metrics", timeout=5).status_code == 401
    auth = {"headers": {"Authorization": f"Bearer {token}"}}

    xero = deployment.xero
    xero_calls_before = len(xero.calls())
    contact_ids = [xero.create_contact(deployment.tenant_id, Name=f"Metrics {n} Pty Ltd",
                                       EmailAddress=f"ap{n}@metrics.example")["ContactID"] for n in range(CONTACTS)]
    assert xero.intent_to_receive(f"{base}/webhooks/xero").ok
    # One event a delivery: six requests for the two gunicorn workers to share as they take them.
    assert set(xero.deliver_webhooks(f"{base}/webhooks/xero", max_events_per_post=1)) == {200}
    assert wait_until(lambda: all(deployment.latest_stage("contact", c) == stages.WRITTEN for c in contact_ids),
                      timeout=120), worker.tail(4000)

    # The worker host's counters (its prefork children's files, summed) are the audit trail's outcomes.
    audited = audited_outcomes(deployment)
    assert audited[("contact", stages.WRITTEN)] >= CONTACTS
    assert wait_until(lambda: scraped_outcomes(scrape(worker_url), cid) == audited, timeout=30), \
        (scraped_outcomes(scrape(worker_url), cid), audited)
    samples = scrape(worker_url)
    # Each contact came by webhook: one delay each, from its received row to its write.
    assert total(samples, "connector_webhook_to_zoho_seconds_count", connection=cid, type="contact") \
        == audited[("contact", stages.WRITTEN)]
    # Every Xero response the sandbox served (the test's own hooks make no HTTP calls) was counted once.
    served = len(xero.calls()) - xero_calls_before
    assert served > 0
    assert wait_until(lambda: total(scrape(worker_url), "connector_xero_calls_total") == served, timeout=30), \
        (total(scrape(worker_url), "connector_xero_calls_total"), served)
    assert total(samples, "connector_zoho_calls_total", connection=cid) > 0
    # Webhook work only here: no scheduled purpose (beat is not running).
    purposes = {labels["purpose"] for labels, _ in samples["connector_xero_calls_total"]}
    assert call_purpose.WEBHOOK_FETCH in purposes and not purposes & call_purpose.SCHEDULED_PURPOSES

    # The web host: whichever gunicorn worker answers, the webhook events of both are in the sum, with the
    # shared state read now.
    # Which gunicorn workers took deliveries is up to them; each one that did wrote its own file.
    pids = {path.stem.rsplit("_", 1)[-1] for path in web_dir.glob("counter_*.db")}
    assert pids and str(web.pid) not in pids  # the master counts nothing itself
    assert list(worker_dir.glob("counter_*.db"))
    for _ in range(4):
        web_samples = scrape(f"{base}/metrics", **auth)
        assert total(web_samples, "connector_webhook_events_accepted_total", vendor="xero") == CONTACTS, pids
    assert total(web_samples, "connector_shared_state_up") == 1
    assert total(web_samples, "connector_connection_active", connection=cid) == 1
    ledger = deployment.deps.budget_ledger
    day_limit = ledger.day_limit(deployment.connection_id)
    assert total(web_samples, "connector_xero_day_limit", connection=cid) == day_limit
    assert total(web_samples, "connector_xero_day_budget_remaining", connection=cid) == \
        day_limit - ledger.used_today(deployment.connection_id)
    assert {labels["queue"] for labels, _ in web_samples["connector_queue_depth"]} == {"xero", "zoho", "maintenance"}
    assert {labels["system"] for labels, _ in web_samples["connector_token_expiry_seconds"]
            if labels["connection"] == cid} == {"xero", "zoho"}
    # The web host reports no record outcomes of its own (the worker host does): no double counting.
    assert scraped_outcomes(web_samples, cid) == Counter()
    for process in (web, worker):
        assert process.alive(), process.tail(3000)
    assert token not in web.output() and token not in worker.output()
