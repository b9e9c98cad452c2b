"""The console's pages and forms through Flask's test client, on the embedded system: what each shows, what
each form changes, and that a form without the console's CSRF token changes nothing."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from types import SimpleNamespace

from celery import Celery

from connector.operator_console import ConsoleData, zoho_record_url
from connector.replay import dismiss, list_failures
from connector.store import audit as stages
from tests.console.console_kit import ADMIN_TOKEN, basic, csrf_of, failed_contact, synced_invoice
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.app import app as celery_app
from workers.cli import main


def test_a_record_is_found_by_invoice_number_name_email_and_id_and_shows_its_trail_and_zoho_link(console):
    client, system = console
    contact, invoice = synced_invoice(system)
    for query in ("INV-7001", "inv-7001", invoice):
        page = client.get("/console/records", query_string={"q": query}, headers=basic()).data.decode()
        assert f"/console/records/{system.connection_id}/invoice/{invoice}" in page, query
    for query in ("harbour", "ACCOUNTS@harbour-lights.example", contact):
        page = client.get("/console/records", query_string={"q": query}, headers=basic()).data.decode()
        assert f"/console/records/{system.connection_id}/contact/{contact}" in page, query
    assert "Nothing matches" in client.get("/console/records?q=INV-70", headers=basic()).data.decode()

    page = client.get(f"/console/records/{system.connection_id}/invoice/{invoice}", headers=basic()).data.decode()
    trail = system.deps.store.audit.trail(system.connection_id, "invoice", invoice)
    assert [e.stage for e in trail][-1] == stages.WRITTEN
    for entry in trail:
        assert entry.sync_id in page and entry.stage in page
    link = system.deps.store.links.get(system.connection_id, "invoice", invoice)
    org = f"/org{system.connection.zoho_org_id}" if system.connection.zoho_org_id else ""
    assert re.search(rf'href="{re.escape(system.settings.zoho_accounts_url)}/crm{org}/tab/Invoices/'
                     rf'{link.zoho_id}"', page)
    assert client.get(f"/console/records/{system.connection_id}/widget/{invoice}", headers=basic()).status_code == 404


def test_replay_of_one_failure_is_enqueued_on_the_replay_path_and_needs_the_csrf_token(console):
    client, system = console
    broken = failed_contact(system, "Broken Pipe Ltd")
    page = client.get("/console/failures", headers=basic()).data.decode()
    key = f"{system.connection_id}|contact|{broken}"
    assert f'value="{key}"' in page and "TransientError" in page

    for token in (None, "forged", csrf_of(page)[:-2] + "xx"):
        form = {"replay_one": key, **({"csrf_token": token} if token else {})}
        answer = client.post("/console/failures", data=form, headers=basic())
        assert answer.status_code == 403 and b"Reload the page" in answer.data
    assert client.post("/console/failures", data={"replay_one": key, "csrf_token": csrf_of(page)}).status_code == 401
    answer = client.post("/console/failures", data={"replay_one": key, "csrf_token": csrf_of(page)}, headers=basic())
    assert answer.status_code == 303 and "done=replayed&n=1" in answer.headers["Location"]
    assert "Queued a replay of 1 record(s)" in client.get(answer.headers["Location"], headers=basic()).data.decode()

    # What the worker receives: connector.replay with the failure's connection, type and id.
    with celery_app.connection_for_read() as connection:
        message = connection.SimpleQueue("maintenance", no_ack=True).get(timeout=2)
    assert message.headers["task"] == "connector.replay"
    assert message.payload[0] == [system.connection_id, "contacts", [broken], "xero"]


def test_a_dismissed_failure_leaves_the_console_and_connector_failures_and_keeps_its_reason(console, capsys):
    client, system = console
    kept, dismissed = failed_contact(system, "Kept Ltd"), failed_contact(system, "Dismissed Ltd")
    page = client.get("/console/failures", headers=basic()).data.decode()
    form = {"selected": [f"{system.connection_id}|contact|{dismissed}"], "action": "dismiss-selected",
            "csrf_token": csrf_of(page)}
    refused = client.post("/console/failures", data=form, headers=basic())
    assert refused.status_code == 400 and "needs a reason" in refused.data.decode()
    answer = client.post("/console/failures", data={**form, "reason": "deleted in Xero on purpose"}, headers=basic())
    assert answer.status_code == 303

    page = client.get(answer.headers["Location"], headers=basic()).data.decode()
    assert "Dismissed 1 failure(s)" in page and kept in page and dismissed not in page
    assert [f.record_id for f in list_failures(system.deps.store)] == [kept]
    assert main(["failures", "--json"]) == 0
    assert [f["record_id"] for f in json.loads(capsys.readouterr().out)] == [kept]
    last = system.deps.store.audit.trail(system.connection_id, "contact", dismissed)[-1]
    assert (last.stage, last.detail["reason"], last.detail["by"]) == (stages.DISMISSED, "deleted in Xero on purpose",
                                                                      "console")

    # The CLI's --dismiss is the same mechanism.
    assert main(["failures", "--dismiss"]) == 2
    assert main(["failures", "--dismiss", "--reason", "known Zoho outage"]) == 0
    assert "dismissed 1 failure(s)" in capsys.readouterr().out
    assert list_failures(system.deps.store) == []


def test_the_mapping_page_validates_the_file_and_previews_one_stored_record(console):
    client, system = console
    _, invoice = synced_invoice(system)
    mapping = system.settings.data_dir / "mapping.yaml"
    mapping.write_text("sync_bills: maybe\n", encoding="utf-8")
    page = client.get("/console/mapping", headers=basic()).data.decode()
    assert "not valid" in page and "sync_bills" in page and "line 1" in page

    mapping.unlink()
    page = client.get("/console/mapping", query_string={"connection": system.connection_id, "record": "invoice",
                                                        "id": invoice}, headers=basic()).data.decode()
    assert "No <code>mapping.yaml</code>" in page
    assert "Zoho Invoices, as it would be written" in page and "INV-7001" in page
    link = system.deps.store.links.get(system.connection_id, "contact",
                                       system.deps.store.snapshots.get(system.connection_id, "invoices", invoice)
                                       .payload["Contact"]["ContactID"])
    assert link.zoho_id in page  # the invoice's Account lookup, from the id links
    contact = system.deps.store.snapshots.get(system.connection_id, "invoices", invoice).payload["Contact"]["ContactID"]
    page = client.get(f"/console/mapping?connection={system.connection_id}&record=contact&id={contact}",
                      headers=basic()).data.decode()
    assert "Zoho Accounts, as it would be written" in page and "Zoho Contacts, as it would be written" in page
    assert "Harbour Lights Ltd" in page
    page = client.get("/console/mapping?connection=1&record=invoice&id=nope", headers=basic()).data.decode()
    assert "no stored invoice nope" in page


def test_no_page_shows_a_configured_secret(console):
    client, system = console
    synced_invoice(system)
    failed_contact(system, "Secretive Ltd")
    settings = system.settings
    secrets = [s.reveal() for s in (settings.xero_client_secret, settings.zoho_client_secret,
                                    settings.xero_webhook_key, settings.admin_token) if s.reveal()]
    secrets.append(system.xero.webhook_key if isinstance(system.xero.webhook_key, str) else "")
    for owner, system_name in ((system.connection_id, "xero"), (system.connection_id, "zoho")):
        tokens = system.deps.credentials.load(owner, system_name).tokens
        secrets += [tokens.access_token.reveal() if hasattr(tokens.access_token, "reveal") else tokens.access_token,
                    tokens.refresh_token.reveal() if hasattr(tokens.refresh_token, "reveal") else tokens.refresh_token]
    secrets = [s for s in secrets if s and len(s) >= 8]
    assert len(secrets) >= 5
    from tests.console.console_kit import ADMIN_TOKEN

    secrets.append(ADMIN_TOKEN)
    invoice = system.deps.store.snapshots.search("INV-7001", connection_ids=[system.connection_id])[0].xero_id
    pages = ["/console/", "/console/records?q=INV-7001", f"/console/records/{system.connection_id}/invoice/{invoice}",
             "/console/failures", f"/console/mapping?connection={system.connection_id}&record=invoice&id={invoice}"]
    for path in pages:
        page = client.get(path, headers=basic()).data.decode()
        assert page.count("<html") == 1, path
        leaked = [s[:4] + "..." for s in secrets if s in page]
        assert leaked == [], path


def test_the_zoho_record_url_is_in_the_orgs_data_centre():
    eu = SimpleNamespace(zoho_org_id="20071234", zoho_accounts_url="https://accounts.zoho.eu")
    assert zoho_record_url(eu, "Invoices", "42") == "https://crm.zoho.eu/crm/org20071234/tab/Invoices/42"
    ca = SimpleNamespace(zoho_org_id="7", zoho_accounts_url="https://accounts.zohocloud.ca")
    assert zoho_record_url(ca, "Accounts", "9") == "https://crm.zohocloud.ca/crm/org7/tab/Accounts/9"
    assert zoho_record_url(eu, "Invoices", "") is None


def test_replay_of_the_ticked_failures_and_of_all_that_match_are_enqueued(console):
    client, system = console
    first, second, other = (failed_contact(system, "First Ltd"), failed_contact(system, "Second Ltd"),
                            failed_contact(system, "Other Ltd", error="DUPLICATE_DATA"))
    page = client.get("/console/failures?error=TransientError", headers=basic()).data.decode()
    assert first in page and second in page and other not in page
    assert "age must be one of 1h, 24h, 7d, 30d" in client.get("/console/failures?age=5y", headers=basic()).data.decode()
    page_24h = client.get(f"/console/failures?age=24h&record=contact&connection={system.connection_id}",
                          headers=basic()).data.decode()
    assert first in page_24h and other in page_24h
    assert first not in client.get("/console/failures?record=invoice", headers=basic()).data.decode()
    form = {"selected": [f"{system.connection_id}|contact|{first}", f"{system.connection_id}|contact|{second}",
                         f"{system.connection_id}|contact|{other}"],  # filtered out: not replayed
            "error": "TransientError", "action": "replay-selected", "csrf_token": csrf_of(page)}
    answer = client.post("/console/failures", data=form, headers=basic())
    assert answer.status_code == 303 and "n=2" in answer.headers["Location"]
    answer = client.post("/console/failures", data={**form, "action": "replay-all", "age": "24h"}, headers=basic())
    assert answer.status_code == 303
    none_ticked = client.post("/console/failures", data={**form, "selected": [], "action": "replay-selected"},
                              headers=basic())
    assert none_ticked.status_code == 400 and "Tick at least one failure" in none_ticked.data.decode()

    with celery_app.connection_for_read() as connection:
        queue = connection.SimpleQueue("maintenance", no_ack=True)
        messages = [queue.get(timeout=2) for _ in range(2)]
    replay, replay_failed = [(m.headers["task"], m.payload[0]) for m in messages]
    assert replay[0] == "connector.replay" and sorted(replay[1][2]) == sorted([first, second])
    assert replay[1][:2] + replay[1][3:] == [system.connection_id, "contacts", "xero"]
    assert replay_failed == ("connector.replay_failed", [None, "24h", None, "TransientError", "xero", 1000])


def test_a_dismissed_record_that_fails_again_is_listed_again_and_status_counts_agree(console):
    client, system = console
    contact = failed_contact(system, "Flaky Ltd")
    [failure] = list_failures(system.deps.store)
    assert dismiss(system.deps.store, [failure], reason="Zoho outage, fixed", by="cli") == 1
    now = system.deps.store.clock.now()
    assert list_failures(system.deps.store) == []
    assert system.deps.store.audit.failure_counts(system.connection_id, now - timedelta(hours=1)) == {}
    system.deps.store.audit.record(connection_id=system.connection_id, record_type="contact", record_id=contact,
                                   stage=stages.FAILED, detail={"reason": "again", "error": "TransientError"})
    assert [f.reason for f in list_failures(system.deps.store)] == ["again"]
    assert system.deps.store.audit.failure_counts(system.connection_id, now - timedelta(hours=1)) == {
        "TransientError": 1}


def test_a_replay_the_broker_did_not_take_says_so_and_what_to_do(system, memory_broker):
    dead_broker = Celery("dead-broker", broker="redis://127.0.0.1:1/0")  # nothing listens on port 1
    client = create_app(webhook_key="k", enqueue=celery_enqueuer(dead_broker), zoho_channels=system.deps.store.channels,
                        admin_token=ADMIN_TOKEN, console=ConsoleData(system.deps)).test_client()
    broken = failed_contact(system, "Unlucky Ltd")
    page = client.get("/console/failures", headers=basic()).data.decode()
    answer = client.post("/console/failures", headers=basic(),
                         data={"replay_one": f"{system.connection_id}|contact|{broken}", "csrf_token": csrf_of(page)})
    dead_broker.close()
    assert answer.status_code == 503
    assert "The replay was not queued" in answer.data.decode() and "check the broker, then try again" in \
        answer.data.decode()
    assert broken in answer.data.decode()  # still listed: nothing lost


def test_replay_all_with_a_filter_that_is_not_valid_queues_nothing_and_says_which(console):
    """A hand-edited or stale form never queues a replay the worker would refuse (the page would have said
    "queued" and nothing would happen), nor answers a bare 500: the filter is named, nothing is queued."""
    client, system = console
    failed_contact(system, "Stale Filter Ltd")
    token = csrf_of(client.get("/console/failures", headers=basic()).data.decode())
    for field, value, said in (("age", "5y", "age must be one of"),
                               ("connection", "abc", "connection must be a connection number")):
        answer = client.post("/console/failures", data={"action": "replay-all", field: value, "csrf_token": token},
                             headers=basic())
        assert answer.status_code == 400 and said in answer.data.decode(), (field, answer.data[:300])
    with celery_app.connection_for_read() as connection:
        assert connection.SimpleQueue("maintenance", no_ack=True).qsize() == 0
