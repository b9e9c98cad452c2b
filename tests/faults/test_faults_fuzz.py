"""A bounded hypothesis fuzz of both webhook endpoints of the real receiver app (its factory, with the real
channel store on PostgreSQL): whatever arrives, never a 5xx, and nothing is queued without a valid Xero
signature or a registered Zoho channel's token."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.clock import SYSTEM_CLOCK
from connector.store import Store
from webhooks import create_app
from webhooks.signatures import xero_signature

pytestmark = pytest.mark.faults

WEBHOOK_KEY = "fuzz-webhook-signing-key"
CHANNEL_ID = "1000000000000042"
CHANNEL_TOKEN = "fuzz-channel-token"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def receiver(pg_database_url):
    store = Store.open(pg_database_url)
    connection = store.connections.create(name="Fuzz Ltd", xero_tenant_id="c2cc9b6e-9458-4c7d-93cc-f02b81b0594f")
    store.channels.save(connection.id, CHANNEL_ID, token=CHANNEL_TOKEN, events=["Contacts.all"],
                        expires_at=SYSTEM_CLOCK.now() + timedelta(days=6))
    queued: list[tuple[str, list, str]] = []
    app = create_app(webhook_key=WEBHOOK_KEY, enqueue=lambda task, args, queue: queued.append((task, args, queue)),
                     zoho_channels=store.channels, max_body_bytes=20_000)
    yield app.test_client(), queued, connection.id
    store.engine.dispose()


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)
xero_event = st.fixed_dictionaries(
    {"resourceId": st.one_of(st.uuids().map(str), st.text(max_size=300), scalars),
     "eventCategory": st.sampled_from(["CONTACT", "INVOICE", "CREDITNOTE", "PAYMENT", "", "contact"]),
     "eventType": st.sampled_from(["CREATE", "UPDATE", "DELETE", ""]),
     "tenantId": st.one_of(st.uuids().map(str), st.text(max_size=50)),
     "eventDateUtc": st.one_of(st.just("2026-11-30T10:00:00.000"), st.text(max_size=30))},
    optional={"resourceUrl": st.text(max_size=80), "tenantType": st.text(max_size=20), "extra": json_values})
xero_bodies = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"events": st.lists(xero_event, max_size=5), "firstEventSequence": scalars,
                           "lastEventSequence": scalars, "entropy": st.text(max_size=20)})
    .map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
)
latin1_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


@FUZZ
@given(body=xero_bodies, signing=st.sampled_from(["valid", "wrong key", "missing", "garbage"]), garbage=latin1_text)
def test_fuzzed_xero_webhooks_never_5xx_and_only_signed_ones_are_queued(receiver, body, signing, garbage):
    client, queued, _ = receiver
    headers = {"Content-Type": "application/json"}
    if signing == "valid":
        headers["x-xero-signature"] = xero_signature(body, WEBHOOK_KEY)
    elif signing == "wrong key":
        headers["x-xero-signature"] = xero_signature(body, "not-the-key")
    elif signing == "garbage":
        headers["x-xero-signature"] = garbage
    before = len(queued)
    answer = client.post("/webhooks/xero", data=body, headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.data[:200])
    if signing != "valid":
        assert answer.status_code == 401
        assert len(queued) == before, "queued without a valid signature"
    if len(queued) > before:
        assert answer.status_code == 200


zoho_payloads = st.fixed_dictionaries(
    {"channel_id": st.one_of(st.just(CHANNEL_ID), st.just(int(CHANNEL_ID)), st.just("1000000000000043"), scalars),
     "token": st.one_of(st.just(CHANNEL_TOKEN), st.just(CHANNEL_TOKEN.upper()), st.just(""), scalars),
     "module": st.one_of(st.sampled_from(["Contacts", "Accounts", "Invoices"]), scalars),
     "ids": st.one_of(st.lists(st.one_of(st.text(max_size=200), st.integers()), max_size=5), scalars),
     "operation": st.one_of(st.sampled_from(["insert", "update", "delete"]), scalars)},
    optional={"server_time": scalars, "affected_fields": json_values, "query_params": json_values})
zoho_bodies = st.one_of(
    st.binary(max_size=2000).map(lambda b: (b, None)),
    zoho_payloads.map(lambda p: (json.dumps(p, ensure_ascii=False).encode("utf-8"), p)),
)


@FUZZ
@given(case=zoho_bodies)
def test_fuzzed_zoho_notifications_never_5xx_and_only_a_channels_token_is_queued(receiver, case):
    client, queued, connection_id = receiver
    body, payload = case
    before = len(queued)
    answer = client.post("/webhooks/zoho", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, (answer.status_code, answer.data[:200])
    if len(queued) > before:
        assert payload is not None and str(payload["channel_id"]) == CHANNEL_ID \
            and payload["token"] == CHANNEL_TOKEN, f"queued without the channel's token: {payload!r}"
        [(_, args, _)] = queued[before:]
        assert args[0] == connection_id
