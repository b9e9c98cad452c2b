"""Shared HTTP plumbing: redaction, Decimal JSON, quick transport retries, the session."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from connector.http import make_session, transport_retry
from connector.json_codec import dumps_for_api, loads_from_api
from connector.redaction import redact_text


def test_redact_hides_given_secrets_raw_and_url_encoded():
    text = "POST /token?refresh_token=a%2Bb%2Fc failed for a+b/c and Bearer eyJhbGciOi.x-y"

    cleaned = redact_text(text, "a+b/c")

    assert "a+b/c" not in cleaned and "a%2Bb%2Fc" not in cleaned and "eyJhbGciOi" not in cleaned
    assert cleaned.startswith("POST /token?refresh_token=***")


def test_redact_hides_token_fields_it_was_not_told_about():
    body = '{"access_token": "abc123", "expires_in": 1800, "refresh_token":"def456"}'

    cleaned = redact_text(body)

    assert "abc123" not in cleaned and "def456" not in cleaned and '"expires_in": 1800' in cleaned


def test_decimal_round_trips_as_exact_json_numbers():
    value = {"Total": Decimal("40.10"), "Rate": Decimal("1E-7"), "Lines": [Decimal("-0.005"), 2, "x", None, True]}

    text = dumps_for_api(value)

    assert text == '{"Total":40.10,"Rate":1E-7,"Lines":[-0.005,2,"x",null,true]}'
    assert loads_from_api(text) == value
    assert json.loads(text)["Total"] == 40.1  # a plain JSON number, not a string
    with pytest.raises(ValueError):
        dumps_for_api(Decimal("NaN"))


def test_transport_retry_retries_connection_errors_three_times_only():
    attempts = []

    @transport_retry
    def flaky():
        attempts.append(1)
        raise requests.ConnectionError("reset")

    with pytest.raises(requests.ConnectionError):
        flaky()
    assert len(attempts) == 3


def test_transport_retry_does_not_retry_other_errors():
    attempts = []

    @transport_retry
    def broken():
        attempts.append(1)
        raise ValueError("not a transport problem")

    with pytest.raises(ValueError):
        broken()
    assert len(attempts) == 1


def test_session_has_a_user_agent_and_no_urllib3_retries():
    session = make_session()

    assert session.headers["User-Agent"].startswith("ml-connector/")
    assert session.get_adapter("https://api.xero.com").max_retries.total == 0


def test_redact_leaves_ordinary_fields_alone():
    text = '{"code":"INVALID_TOKEN","ItemCode":"ABC","my_access_token_count":3}'

    assert redact_text(text) == text
