"""A record Zoho refuses in a 207: retried alone when the code is retryable, dead-lettered when not;
the rest of the batch is written. Driven through push_to_zoho on a real Celery worker (in-process broker)."""

from __future__ import annotations

from datetime import timedelta

from connector.mapping import zoho_fields as zf
from connector.sandbox.xero_seed import seed_demo_org, seed_invoices
from connector.sandbox.zoho import ZohoSandbox, _item_error, _Rejected
from connector.store import audit as stages
from workers.embedded import EmbeddedWorker, wait_until, wait_until_quiet
from workers.zoho_tasks import push_to_zoho


class RefusingZoho(ZohoSandbox):
    """The Zoho sandbox, refusing chosen Accounts and Invoices (by their Xero id) in its real 207 path with a
    per-record code, the given number of times: e.g. LOCKED_RECORD while an approval holds the record."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.refuse: dict[str, list] = {}  # Xero contact id -> [code, times left]

    def _write_one(self, module, item, index, op, dup_fields):
        key = {"Accounts": zf.ACCOUNT_XERO_ID, "Invoices": zf.INVOICE_XERO_ID}.get(module)
        rule = self.refuse.get(item.get(key)) if key and isinstance(item, dict) else None
        if rule and rule[1] > 0:
            rule[1] -= 1
            raise _Rejected(_item_error(rule[0], f"refused ({rule[0]})", "Xero_Contact_ID", f"$.data[{index}]"))
        return super()._write_one(module, item, index, op, dup_fields)


def test_retryable_refusal_is_retried_alone_and_a_data_refusal_is_dead_lettered(make_system, memory_broker):
    zoho = RefusingZoho()
    picture = make_system(zoho=zoho)
    audit = picture.deps.store.audit
    locked, refused, fine = seed_demo_org(picture.xero, picture.tenant_id, contacts=3)
    picture.fetch("contacts", [locked, refused, fine])
    zoho.refuse = {locked: ["LOCKED_RECORD", 1], refused: ["DUPLICATE_DATA", 99]}

    with EmbeddedWorker():
        push_to_zoho.apply_async(args=[picture.connection_id, "contacts", [locked, refused, fine]],
                                 kwargs={"buffered": False})
        assert wait_until(lambda: audit.latest_stage(picture.connection_id, "contact", locked) == stages.WRITTEN,
                          timeout=15)
        assert wait_until_quiet(lambda: (len(zoho.requests), audit.count()), quiet_for=2.5, timeout=15)

    # One upsert of all three (207), then one of the locked record alone; the refused one never again.
    assert [w["count"] for w in zoho.writes("Accounts")] == [3, 1]
    accounts = {a["Xero_Contact_ID"] for a in zoho.records("Accounts")}
    assert accounts == {locked, fine}
    assert zoho.refuse[refused][1] == 98

    def stages_of(xero_id):
        return [(e.stage, (e.detail or {}).get("error_code")) for e in audit.trail(picture.connection_id, "contact", xero_id)
                if e.stage != stages.FETCHED]

    assert stages_of(fine) == [(stages.MAPPED, None), (stages.WRITTEN, None)]
    assert stages_of(locked) == [(stages.MAPPED, None), (stages.RETRYING, "LOCKED_RECORD"),
                                 (stages.MAPPED, None), (stages.WRITTEN, None)]
    assert stages_of(refused) == [(stages.MAPPED, None), (stages.FAILED, "DUPLICATE_DATA")]
    [failure] = audit.failures(connection_id=picture.connection_id, limit=10)
    assert failure.record_id == refused and failure.detail["error_code"] == "DUPLICATE_DATA"


def test_a_retryable_refusal_on_the_last_attempt_is_dead_lettered(make_system):
    """The task's last attempt (workers.zoho_tasks.MAX_RECORD_RETRIES) audits a still-retryable refusal as failed."""
    zoho = RefusingZoho()
    picture = make_system(zoho=zoho)
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    picture.fetch("contacts", contacts)
    zoho.refuse = {contacts[0]: ["LOCKED_RECORD", 99]}
    push = picture.push()
    push.final_attempt = True
    outcome = push.contacts(contacts)
    assert outcome.written == [contacts[1]] and outcome.retry == [contacts[0]]
    last = picture.deps.store.audit.trail(picture.connection_id, "contact", contacts[0])[-1]
    assert last.stage == stages.FAILED and last.detail["error_code"] == "LOCKED_RECORD" and last.detail["dead_lettered"]


def test_an_invoice_refused_with_a_retryable_code_is_audited_retrying_not_failed(make_system):
    """Only the last attempt dead-letters a retryable refusal; before it nothing is counted as a failure."""
    zoho = RefusingZoho()
    picture = make_system(zoho=zoho)
    store = picture.deps.store
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    refused, *written = seed_invoices(picture.xero, picture.tenant_id, contacts, per_contact=1)
    picture.fetch("contacts", contacts)
    picture.fetch("invoices", [refused, *written])
    zoho.refuse = {refused: ["INTERNAL_ERROR", 1]}

    outcome = picture.push().invoices([refused, *written])

    assert outcome.retry == [refused] and sorted(outcome.written) == sorted(written)
    last = store.audit.trail(picture.connection_id, "invoice", refused)[-1]
    assert last.stage == stages.RETRYING and last.detail["error_code"] == "INTERNAL_ERROR"
    assert store.audit.failures(picture.connection_id) == []
    day_ago = store.clock.now() - timedelta(hours=24)
    assert store.audit.failure_counts(picture.connection_id, day_ago) == {}
