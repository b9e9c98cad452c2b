"""What an operator reads when Zoho refuses a record: one WARNING line with Zoho's code, message and
field, the same reason in the audit trail and `connector failures`, and no traceback (those are for bugs).
Driven through push_records_to_zoho on a real Celery worker (in-process broker) against the Zoho sandbox."""

from __future__ import annotations

import logging

import pytest

from connector.errors import ApiError
from connector.logs import TextFormatter
from connector.replay import list_failures
from connector.sandbox.xero_seed import seed_demo_org
from connector.sandbox.zoho import ZohoSandbox, _error, _item_error, _Rejected
from connector.store import audit as stages
from workers.embedded import EmbeddedWorker, wait_until, wait_until_quiet
from workers.zoho_tasks import push_records_to_zoho


class EmailRefusingZoho(ZohoSandbox):
    """Answers an Accounts upsert holding a chosen record with Zoho's request-level error for a field
    (status-codes page: 400 INVALID_DATA, details.api_name)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.refuse: set[str] = set()

    def _write_request(self, module, body, op, record_id=None):
        items = body.get("data") if isinstance(body, dict) else None
        if module == "Accounts" and any(isinstance(i, dict) and i.get("Xero_Contact_ID") in self.refuse
                                        for i in items or []):
            return _error(400, "INVALID_DATA", "invalid data", {"api_name": "Email"})
        return super()._write_request(module, body, op, record_id)


class PerRecordRefusingZoho(ZohoSandbox):
    """Refuses chosen Accounts inside its per-record results (207, or 400 when all fail): {"data": [...]}."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.refuse: set[str] = set()

    def _write_one(self, module, item, index, op, dup_fields):
        if module == "Accounts" and isinstance(item, dict) and item.get("Xero_Contact_ID") in self.refuse:
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "Email", f"$.data[{index}].Email"))
        return super()._write_one(module, item, index, op, dup_fields)


def test_a_request_level_refusal_names_zoho_code_message_and_field(make_system):
    zoho = EmailRefusingZoho()
    picture = make_system(zoho=zoho)
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    picture.fetch("contacts", [contact])
    zoho.refuse = {contact}
    with pytest.raises(ApiError) as refused:
        picture.push().contacts([contact])
    message = str(refused.value)
    assert "400" in message and "INVALID_DATA" in message and "invalid data" in message and "Email" in message


def test_a_refused_record_is_one_warning_line_no_traceback_and_its_tries_agree(make_system, memory_broker,
                                                                               caplog):
    zoho = EmailRefusingZoho()
    picture = make_system(zoho=zoho)
    audit = picture.deps.store.audit
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=4)
    picture.fetch("contacts", contacts)
    refused = contacts[1]
    zoho.refuse = {refused}

    caplog.set_level(logging.INFO)
    with EmbeddedWorker():
        push_records_to_zoho.apply_async(args=[picture.connection_id, "contacts", contacts])
        assert wait_until(lambda: audit.latest_stage(picture.connection_id, "contact", refused) == stages.FAILED,
                          timeout=30)
        assert wait_until_quiet(lambda: (len(zoho.requests), audit.count(), len(caplog.records)), quiet_for=2.0,
                                timeout=30)

    # The batch was split until the refused record was alone; the others were written.
    assert {a["Xero_Contact_ID"] for a in zoho.records("Accounts")} == set(contacts) - {refused}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in warnings] == [logging.WARNING], [r.getMessage() for r in warnings]
    line = TextFormatter().format(warnings[0])  # the line as an operator reads it
    assert "INVALID_DATA" in line and "invalid data" in line and "Email" in line, line
    assert not [r for r in caplog.records if r.exc_info], "an expected refusal logged a traceback"

    [failure] = list_failures(picture.deps.store, connection_id=picture.connection_id)
    last = audit.trail(picture.connection_id, "contact", refused)[-1]
    assert failure.record_id == refused
    assert "INVALID_DATA" in failure.reason and "Email" in failure.reason
    assert failure.attempts == last.detail["attempts"] == 3  # 4 records, then 2, then the refused one alone


def test_a_revoked_zoho_grant_says_to_reconnect_zoho_not_xero(make_system, memory_broker, caplog):
    picture = make_system()
    deps = picture.deps
    [contact] = seed_demo_org(picture.xero, picture.tenant_id, contacts=1)
    picture.fetch("contacts", [contact])
    picture.zoho.revoke(deps.credentials.load(picture.connection_id, "zoho").tokens.refresh_token.reveal())
    picture.zoho.expire_access_tokens()

    caplog.set_level(logging.INFO)
    with EmbeddedWorker():
        push_records_to_zoho.apply_async(args=[picture.connection_id, "contacts", [contact]])
        assert wait_until(lambda: deps.store.connections.get(picture.connection_id).state == "needs_reauth",
                          timeout=30)
        assert wait_until_quiet(lambda: len(caplog.records), quiet_for=1.0, timeout=30)

    said = [TextFormatter().format(r) for r in caplog.records if r.levelno >= logging.WARNING]
    todo = [line for line in said if "needs a person" in line]
    assert len(todo) == 1, said
    assert f"connector connect zoho --connection {picture.connection_id}" in todo[0]
    assert "connect xero" not in todo[0]
    assert "invalid_code" in todo[0]
    assert not [r for r in caplog.records if r.exc_info], "an expected outcome logged a traceback"
    reason = deps.store.connections.get(picture.connection_id).state_reason
    assert "invalid_code" in reason


def test_only_our_reported_errors_lose_their_traceback_and_the_mark_survives_the_result_pickle():
    import pickle

    from workers.base import ConnectorTask, Reported, reported

    refusal = pickle.loads(pickle.dumps(reported(ApiError("Zoho POST /x: 400 INVALID_DATA", status=400))))
    assert isinstance(refusal, ApiError) and refusal.status == 400 and isinstance(refusal, ConnectorTask.throws)
    assert not isinstance(ApiError("not audited yet", status=400), Reported)
    assert not isinstance(reported(KeyError("a bug")), ConnectorTask.throws)


def test_a_per_record_refusal_names_zoho_code_message_and_field_in_the_audit(make_system):
    zoho = PerRecordRefusingZoho()
    picture = make_system(zoho=zoho)
    refused, fine = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    picture.fetch("contacts", [refused, fine])
    zoho.refuse = {refused}
    outcome = picture.push().contacts([refused, fine])
    assert outcome.written == [fine]
    last = picture.deps.store.audit.trail(picture.connection_id, "contact", refused)[-1]
    assert last.stage == stages.FAILED and last.detail["error_code"] == "INVALID_DATA"
    reason = last.detail["reason"]
    assert "INVALID_DATA" in reason and "invalid data" in reason and "Email" in reason, reason
