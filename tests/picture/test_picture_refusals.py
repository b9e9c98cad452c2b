"""A record Zoho refuses in a 207: retried alone when the code is retryable (then parked), dead-lettered when not;
the rest of the batch is written. Driven through push_records_to_zoho on a real Celery worker (in-process broker)."""

from __future__ import annotations

from datetime import timedelta

from connector.mapping import zoho_fields as zf
from connector.sandbox.xero_seed import seed_demo_org, seed_invoices
from connector.sandbox.zoho import ZohoSandbox, _item_error, _Rejected
from connector.store import audit as stages
from connector.store.parked import OUTAGE
from workers.embedded import EmbeddedWorker, wait_until, wait_until_quiet
from workers.zoho_tasks import MAX_RECORD_RETRIES, push_records_to_zoho


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
        push_records_to_zoho.apply_async(args=[picture.connection_id, "contacts", [locked, refused, fine]])
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


def test_a_retryable_refusal_still_refused_on_the_last_attempt_is_parked_not_dead_lettered(make_system):
    """The task's last attempt (workers.zoho_tasks.MAX_RECORD_RETRIES) parks a still-retryable refusal, with its own
    backoff: it is pushed again later and never counted as a failure."""
    zoho = RefusingZoho()
    picture = make_system(zoho=zoho)
    store = picture.deps.store
    locked, fine = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    picture.fetch("contacts", [locked, fine])
    zoho.refuse = {locked: ["LOCKED_RECORD", 99]}

    result = push_records_to_zoho.apply(args=[picture.connection_id, "contacts", [locked, fine], {locked: "s-1"}],
                                        kwargs={"attempt": MAX_RECORD_RETRIES})

    assert result.successful() and result.result == 1  # the one written
    assert store.audit.latest_stage(picture.connection_id, "contact", fine) == stages.WRITTEN
    trail = [(e.stage, (e.detail or {}).get("error_code")) for e in store.audit.trail(picture.connection_id, "contact",
                                                                                      locked)]
    assert trail[-2:] == [(stages.RETRYING, "LOCKED_RECORD"), (stages.PARKED, None)]
    assert store.parked.count(picture.connection_id, reason=OUTAGE) == 1
    assert store.audit.failures(picture.connection_id) == []


def test_an_invoice_refused_with_a_retryable_code_is_audited_retrying_not_failed(make_system):
    """A retryable refusal is never counted as a failure: retried alone, then parked."""
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
