"""Prometheus metrics in one process: the counters where the audit trail stores outcomes and where the HTTP
pipeline reports responses, the webhook-to-Zoho delay from the trail's own times, the shared-state collector
read at scrape time, /metrics behind the operator token, and the sample alert rules naming real metrics.
(tests/deploy/test_deploy_metrics.py adds the counters up across real gunicorn and Celery prefork processes.)"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from connector import metrics
from connector.clock import ManualClock
from connector.pipeline.common import new_sync_id, new_sync_ids, webhook_received_at, webhook_sync_ids
from connector.sandbox.xero_seed import seed_demo_org
from connector.store import Store
from connector.store import audit as stages
from connector.store.parked import NEEDS_REAUTH
from webhooks import create_app
from workers.cli import main

REPO = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(registry) -> dict[str, dict[tuple, float]]:
    """Parsed text format: metric sample name -> {sorted label pairs: value}."""
    body, _ = metrics.exposition(registry)
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def test_outcome_and_call_counters_match_the_audit_trail_and_the_sandbox(make_system, capsys):
    system = make_system(tenant="Metrics Ltd", clock=ManualClock())
    deps, cid = system.deps, system.connection_id
    labels = {"connection": str(cid), "type": "contact", "direction": stages.XERO_TO_ZOHO}
    synced_before = sample("connector_records_synced_total", **labels)
    xero_before = sum(sample("connector_xero_calls_total", connection=str(cid), purpose=p, status="2xx")
                      for p in ("webhook_fetch", "unspecified"))
    zoho_before = sample("connector_zoho_calls_total", connection=str(cid), status="2xx")
    xero_seen_before = len(system.xero.calls(path_prefix="/api.xro/2.0", tenant=system.tenant_id))

    contacts = seed_demo_org(system.xero, system.tenant_id, contacts=3)
    assert main(["replay", str(cid), "contacts", *contacts]) == 0
    capsys.readouterr()

    written = sum(deps.store.audit.latest_stage(cid, "contact", c) == stages.WRITTEN for c in contacts)
    assert written == 3
    assert sample("connector_records_synced_total", **labels) - synced_before == written
    xero_calls = len(system.xero.calls(path_prefix="/api.xro/2.0", tenant=system.tenant_id)) - xero_seen_before
    assert xero_calls >= 1
    assert sample("connector_xero_calls_total", connection=str(cid), purpose="webhook_fetch", status="2xx") \
        + sample("connector_xero_calls_total", connection=str(cid), purpose="unspecified", status="2xx") \
        - xero_before == xero_calls
    assert sample("connector_zoho_calls_total", connection=str(cid), status="2xx") > zoho_before

    # A parked and a failed record count where the trail stores them; a retry (not an outcome) does not.
    failed_before = sample("connector_records_failed_total", connection=str(cid), type="invoice",
                           direction=stages.XERO_TO_ZOHO)
    parked_before = sample("connector_records_parked_total", connection=str(cid), type="invoice",
                           direction=stages.XERO_TO_ZOHO)
    for stage in (stages.FAILED, stages.PARKED, stages.RETRYING):
        deps.store.audit.record(connection_id=cid, record_type="invoice", record_id="inv-1", stage=stage)
    assert sample("connector_records_failed_total", connection=str(cid), type="invoice",
                  direction=stages.XERO_TO_ZOHO) - failed_before == 1
    assert sample("connector_records_parked_total", connection=str(cid), type="invoice",
                  direction=stages.XERO_TO_ZOHO) - parked_before == 1


def test_webhook_to_zoho_delay_runs_from_the_receipt_time_in_the_webhooks_sync_id(tmp_path):
    clock = ManualClock()
    store = Store.open(f"sqlite:///{tmp_path / 'audit.db'}", clock=clock)
    labels = {"connection": "77", "type": "contact"}
    count_before = sample("connector_webhook_to_zoho_seconds_count", **labels)
    sum_before = sample("connector_webhook_to_zoho_seconds_sum", **labels)
    le_10_before = sample("connector_webhook_to_zoho_seconds_bucket", le="10.0", **labels)

    [by_webhook] = webhook_sync_ids(1, received_at=clock.time())
    # Trips no webhook started: a poll's, and an id of a release before the mark whose random digit is "7"
    # (its "time" is centuries off).
    by_poll = new_sync_id()
    old_random = "0000000000017" + by_poll[13:]
    assert webhook_received_at(by_poll, now=clock.time()) is None
    assert webhook_received_at(old_random, now=clock.time()) is None
    clock.advance(12.5)
    batch = store.audit.batch()
    for record_id, sync_id in (("c-1", by_webhook), ("c-2", by_poll), ("c-3", old_random)):
        batch.record(connection_id=77, record_type="contact", record_id=record_id, sync_id=sync_id,
                     stage=stages.WRITTEN)
    # Skipped (Zoho already held it) and the other direction are not webhook-to-Zoho writes.
    batch.record(connection_id=77, record_type="contact", record_id="c-4", sync_id=by_webhook, stage=stages.SKIPPED)
    batch.flush()

    assert sample("connector_webhook_to_zoho_seconds_count", **labels) - count_before == 1
    assert sample("connector_webhook_to_zoho_seconds_sum", **labels) - sum_before == 12.5
    assert sample("connector_webhook_to_zoho_seconds_bucket", le="10.0", **labels) == le_10_before
    store.close()


def test_sync_ids_keep_their_shape_and_only_the_receivers_carry_a_time():
    ids = new_sync_ids(200)
    assert len(set(ids)) == 200 and all(re.fullmatch(r"[0-9a-f]{32}", s) for s in ids)
    stamped = webhook_sync_ids(50, received_at=1_767_600_000.123)
    assert len(set(stamped)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", s) for s in stamped)
    assert {webhook_received_at(s, now=1_767_600_001.0) for s in stamped} == {1_767_600_000.123}
    assert {webhook_received_at(s, now=1_767_600_001.0) for s in ids} == {None}
    assert webhook_received_at(stamped[0], now=1_767_600_000.0) is None  # received after "now": not trusted


def test_shared_state_collector_reads_budget_tokens_channels_parked_and_queues_at_scrape_time(make_system,
                                                                                           capsys):
    clock = ManualClock()
    system = make_system(tenant="Metrics Gauges Ltd", clock=clock)
    deps, cid = system.deps, system.connection_id
    contacts = seed_demo_org(system.xero, system.tenant_id, contacts=2)
    assert main(["replay", str(cid), "contacts", *contacts]) == 0
    capsys.readouterr()
    deps.store.parked.park(cid, "invoices", ["inv-1", "inv-2"], reason=NEEDS_REAUTH)
    deps.store.channels.save(cid, "chan-metrics", token="t" * 20, events=["Accounts.all"],
                             expires_at=clock.now() + timedelta(hours=5))
    collector = metrics.SharedStateCollector(deps, queue_depths=lambda settings: {"xero": 4, "zoho": 0})

    values = scraped(metrics.scrape_registry(None, collector))
    conn = (("connection", str(cid)),)
    assert values["connector_shared_state_up"] == {(): 1.0}
    assert values["connector_connection_active"][conn] == 1.0
    used = deps.budget_ledger.used_today(cid)
    assert used >= 1
    assert values["connector_xero_day_limit"][conn] == 5000  # learned from the sandbox's headers
    assert values["connector_xero_day_budget_remaining"][conn] == 5000 - used
    for system_name in ("xero", "zoho"):
        stored = deps.credentials.load(deps.credentials.owner_of(cid, system_name), system_name)
        assert values["connector_token_expiry_seconds"][(("connection", str(cid)), ("system", system_name))] == \
            (stored.tokens.expires_at - clock.now()).total_seconds()
    channels = [ch.expires_at for ch in deps.store.channels.for_connection(cid)]
    assert values["connector_zoho_channel_expiry_seconds"][conn] == (min(channels) - clock.now()).total_seconds()
    assert values["connector_parked_records"][(("connection", str(cid)), ("reason", NEEDS_REAUTH))] == 2
    assert values["connector_queue_depth"] == {(("queue", "xero"),): 4.0, (("queue", "zoho"),): 0.0}

    # Read again at the next scrape, never cached: an hour later the token is an hour nearer expiry.
    before = values["connector_token_expiry_seconds"][(("connection", str(cid)), ("system", "xero"))]
    clock.advance(3600)
    again = scraped(metrics.scrape_registry(None, collector))
    assert again["connector_token_expiry_seconds"][(("connection", str(cid)), ("system", "xero"))] == before - 3600


def test_an_unreadable_shared_state_says_so_and_the_counters_still_answer():
    class Broken:
        @property
        def store(self):
            raise ConnectionError("database unreachable at db.internal:5432")

    values = scraped(metrics.scrape_registry(None, metrics.SharedStateCollector(Broken())))
    assert values["connector_shared_state_up"] == {(): 0.0}
    assert "connector_connection_active" not in values
    assert any(name.startswith("connector_records_") or name.startswith("python_") for name in values)


def test_metrics_route_needs_the_operator_token_and_fails_closed_without_one():
    def exposition():
        return metrics.exposition(metrics.scrape_registry(None))

    common = dict(webhook_key="k" * 32, enqueue=lambda *a: None, zoho_channels=None, metrics=exposition)
    app = create_app(admin_token="operator-token-0123456789", **common)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer operator-token-0123456789"})
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    assert list(text_string_to_metric_families(answer.get_data(as_text=True)))
    closed = create_app(admin_token="", **common).test_client()
    assert closed.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def metric_names_exposed() -> set[str]:
    """Every sample name the connector's metrics can have (counters' _total, histograms' parts, gauges)."""
    names = set(metrics.SHARED_GAUGES)
    for counter in (*metrics.RECORD_OUTCOMES.values(), metrics.XERO_CALLS, metrics.ZOHO_CALLS,
                    metrics.WEBHOOK_EVENTS):
        names.add(f"{counter._name}_total")
    histogram = metrics.WEBHOOK_TO_ZOHO_SECONDS._name
    names |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return names


def test_the_sample_alert_rules_parse_and_name_only_metrics_that_exist():
    rules = yaml.safe_load((REPO / "docs" / "prometheus-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs and all(rule.get("alert") and rule.get("annotations", {}).get("summary")
                         for group in rules["groups"] for rule in group["rules"])
    named = {name for expr in exprs for name in re.findall(r"\bconnector_[a-z_]+", str(expr))}
    assert named and named - metric_names_exposed() == set()
    # And the README lists each of them.
    readme = (REPO / "README.md").read_text()
    histogram = metrics.WEBHOOK_TO_ZOHO_SECONDS._name
    documented = {histogram if name.startswith(histogram) else name for name in metric_names_exposed()}
    assert sorted(name for name in documented if f"`{name}" not in readme) == []


def test_a_workers_metrics_listen_on_loopback_unless_an_address_is_configured(tmp_path):
    """The worker's /metrics has no auth: by default only this host reaches it; CONNECTOR_METRICS_ADDRESS
    opens it to a scraper elsewhere, and a malformed address refuses to start."""
    import socket

    import pytest

    from connector.errors import ConfigError
    from connector.settings import Settings

    assert Settings.from_env({"CONNECTOR_EMBEDDED": "1"}).metrics_address == "127.0.0.1"
    assert Settings.from_env({"CONNECTOR_EMBEDDED": "1", "CONNECTOR_METRICS_ADDRESS": "0.0.0.0"}
                             ).metrics_address == "0.0.0.0"
    with pytest.raises(ConfigError, match="CONNECTOR_METRICS_ADDRESS"):
        Settings.from_env({"CONNECTOR_EMBEDDED": "1", "CONNECTOR_METRICS_ADDRESS": "every interface"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = metrics.serve_worker_metrics(port, tmp_path, address="127.0.0.1")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
