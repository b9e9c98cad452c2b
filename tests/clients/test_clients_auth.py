"""Token managers against the real CredentialStore (SQLite) and the real Redis (db 10); OAuth HTTP faked."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from tests.clients.conftest import (
    XERO_API_URL,
    XERO_CLIENT_SECRET,
    XERO_TOKEN_URL,
    ZOHO_ACCOUNTS_URL,
    ZOHO_API_DOMAIN,
    ZOHO_CLIENT_SECRET,
    token_set,
)

from connector.errors import NeedsReauth, RateLimited, TransientError
from connector.xero.client import XeroClient

ZOHO_TOKEN_URL = ZOHO_ACCOUNTS_URL + "/oauth/v2/token"


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def xero_token_body(n: int) -> dict:
    # Shape of Xero's token response (https://developer.xero.com/documentation/guides/oauth2/auth-flow);
    # exactly the keys the official SDK accepts.
    return {"access_token": f"xero-access-{n}", "expires_in": 1800, "token_type": "Bearer",
            "refresh_token": f"xero-refresh-{n}", "scope": "offline_access accounting.contacts"}


# -- Xero ---------------------------------------------------------------------------------------


def test_fresh_token_is_served_from_the_store_without_a_call(xero_tokens, http):
    assert xero_tokens.access_token() == "xero-access-1"
    assert len(http.calls) == 0


def test_expiring_token_is_rotated_and_stored_before_it_is_used(xero_tokens, credentials, connection_id, clock, http, session):
    http.post(XERO_TOKEN_URL, json=xero_token_body(2))
    stored_when_used = []

    def api(request):  # what the store holds at the moment the new access token reaches Xero
        stored = credentials.load(connection_id, "xero")
        stored_when_used.append((stored.tokens.refresh_token.reveal(), stored.version))
        return 200, {"Content-Type": "application/json"}, '{"Contacts":[{"ContactID":"c-1"}]}'

    http.add_callback(responses.GET, XERO_API_URL + "/api.xro/2.0/Contacts/c-1", callback=api)
    clock.advance(1800 - 299)  # inside the 300 s refresh margin

    client = XeroClient(session=session, tokens=xero_tokens, tenant_id="t", api_url=XERO_API_URL)
    client.get_record("contacts", "c-1")

    token_call = http.calls[0]
    assert form(token_call) == {"grant_type": "refresh_token", "refresh_token": "xero-refresh-1"}
    expected_basic = base64.b64encode(f"xero-client-id:{XERO_CLIENT_SECRET}".encode()).decode()
    assert token_call.request.headers["Authorization"] == f"Basic {expected_basic}"
    assert stored_when_used == [("xero-refresh-2", 2)]
    assert http.calls[1].request.headers["Authorization"] == "Bearer xero-access-2"
    stored = credentials.load(connection_id, "xero").tokens
    assert stored.expires_at == clock.now() + timedelta(seconds=1800)


def _access_tokens_of_ten_threads_at_once(manager) -> list[str]:
    """What ``manager.access_token()`` gives each of ten threads released together."""
    barrier = threading.Barrier(10)
    tokens: list[str] = []

    def worker():
        barrier.wait()
        tokens.append(manager.access_token())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return tokens


def test_ten_threads_with_an_expired_token_make_exactly_one_refresh(xero_tokens, clock, http):
    def slow_token_endpoint(request):
        time.sleep(0.2)  # keep the window open so every thread arrives while the refresh is running
        return 200, {"Content-Type": "application/json"}, json.dumps(xero_token_body(2))

    http.add_callback(responses.POST, XERO_TOKEN_URL, callback=slow_token_endpoint)
    clock.advance(3600)
    tokens = _access_tokens_of_ten_threads_at_once(xero_tokens)
    assert tokens == ["xero-access-2"] * 10
    assert len(http.calls) == 1


def test_lost_refresh_answer_is_retried_with_the_same_refresh_token(xero_tokens, credentials, connection_id, clock, http):
    http.post(XERO_TOKEN_URL, body=requests.ConnectionError("connection reset by peer"))
    http.post(XERO_TOKEN_URL, json=xero_token_body(2))

    assert xero_tokens.refresh(force=True) == "xero-access-2"

    assert [form(call)["refresh_token"] for call in http.calls] == ["xero-refresh-1", "xero-refresh-1"]
    assert credentials.load(connection_id, "xero").version == 2


def test_refresh_that_never_answers_keeps_the_old_tokens_for_the_next_try(xero_tokens, credentials, connection_id, http):
    http.post(XERO_TOKEN_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(TransientError) as raised:
        xero_tokens.refresh(force=True)

    assert len(http.calls) == 3
    stored = credentials.load(connection_id, "xero")
    assert (stored.tokens.refresh_token.reveal(), stored.version) == ("xero-refresh-1", 1)
    assert "xero-refresh-1" not in str(raised.value) and XERO_CLIENT_SECRET not in str(raised.value)


def test_invalid_grant_means_reconnect(xero_tokens, http):
    http.post(XERO_TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(NeedsReauth, match="invalid_grant") as raised:
        xero_tokens.refresh(force=True)

    text = str(raised.value) + repr(raised.value)
    assert "xero-refresh-1" not in text and "xero-access-1" not in text and XERO_CLIENT_SECRET not in text


def test_force_refresh_skips_the_call_when_another_process_refreshed_meanwhile(xero_tokens, credentials, connection_id, clock, http, redis):
    http.post(XERO_TOKEN_URL, json=xero_token_body(3))
    assert xero_tokens.access_token() == "xero-access-1"  # the token of a call that was refused: force a refresh
    lock = redis.lock(f"connector:oauth-refresh:xero:{connection_id}", timeout=5)
    lock.acquire()  # "another process" holds the lock and is refreshing
    outcome: list[str] = []
    waiter = threading.Thread(target=lambda: outcome.append(xero_tokens.refresh(force=True)))
    waiter.start()
    credentials.save(connection_id, "xero", token_set(clock, access="xero-access-2", refresh="xero-refresh-2"),
                     expected_version=1)
    lock.release()
    waiter.join(5)

    assert outcome == ["xero-access-2"]
    assert len(http.calls) == 0


def test_exchange_code_returns_the_token_set(xero_tokens, http, clock):
    http.post(XERO_TOKEN_URL, json=xero_token_body(9))

    tokens = xero_tokens.exchange_code("the-code", "https://connector.example/callback")

    assert form(http.calls[0]) == {"grant_type": "authorization_code", "code": "the-code",
                                   "redirect_uri": "https://connector.example/callback"}
    assert tokens.refresh_token.reveal() == "xero-refresh-9"
    assert tokens.expires_at == clock.now() + timedelta(seconds=1800)
    assert "xero-access-9" not in repr(tokens) and "xero-refresh-9" not in repr(tokens)
    assert "secret" not in repr(xero_tokens).lower() and "xero-access" not in repr(xero_tokens)


def test_no_stored_tokens_means_connect_first(credentials, redis, session, clock):
    from connector.secret import Secret
    from connector.xero.auth import XeroTokenManager

    manager = XeroTokenManager(connection_id=999, credentials=credentials, redis=redis, session=session,
                               token_url=XERO_TOKEN_URL, client_id="id", client_secret=Secret("s"), clock=clock)
    with pytest.raises(NeedsReauth, match="connect"):
        manager.access_token()


# -- Zoho ---------------------------------------------------------------------------------------


def zoho_refresh_body(n: int, domain: str = ZOHO_API_DOMAIN) -> dict:
    return {"access_token": f"zoho-access-{n}", "api_domain": domain, "token_type": "Bearer", "expires_in": 3600}


def test_zoho_refresh_keeps_the_refresh_token_and_stores_the_api_domain(zoho_tokens, credentials, connection_id, clock, http):
    http.post(ZOHO_TOKEN_URL, json=zoho_refresh_body(2, "https://www.zohoapis.com.au"))
    clock.advance(3600)

    assert zoho_tokens.access_token() == "zoho-access-2"

    assert form(http.calls[0]) == {"grant_type": "refresh_token", "refresh_token": "zoho-refresh-1",
                                   "client_id": "zoho-client-id", "client_secret": ZOHO_CLIENT_SECRET}
    stored = credentials.load(connection_id, "zoho")
    assert stored.version == 2
    assert stored.tokens.refresh_token.reveal() == "zoho-refresh-1"
    assert stored.tokens.extra["api_domain"] == "https://www.zohoapis.com.au"
    assert zoho_tokens.api_domain() == "https://www.zohoapis.com.au"


def test_zoho_ten_threads_share_one_refresh(zoho_tokens, clock, http):
    def slow(request):
        time.sleep(0.2)
        return 200, {"Content-Type": "application/json;charset=UTF-8"}, json.dumps(zoho_refresh_body(2))

    http.add_callback(responses.POST, ZOHO_TOKEN_URL, callback=slow)
    clock.advance(7200)
    tokens = _access_tokens_of_ten_threads_at_once(zoho_tokens)
    assert tokens == ["zoho-access-2"] * 10 and len(http.calls) == 1


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        ({"error": "invalid_code"}, NeedsReauth, "invalid_code"),
        ({"error": "invalid_client"}, NeedsReauth, "data centre"),
        ({"error_description": "You have made too many requests continuously. Please try again after some time.",
          "error": "Access Denied", "status": "failure"}, RateLimited, "throttled"),
    ],
)
def test_zoho_token_errors_arrive_as_http_200(zoho_tokens, credentials, connection_id, http, body, error, text):
    http.post(ZOHO_TOKEN_URL, status=200, json=body)

    with pytest.raises(error, match=text) as raised:
        zoho_tokens.refresh(force=True)

    if error is RateLimited:
        assert raised.value.retry_after == 60
    message = str(raised.value)
    assert "zoho-refresh-1" not in message and ZOHO_CLIENT_SECRET not in message
    assert credentials.load(connection_id, "zoho").version == 1  # nothing stored on failure


def test_zoho_exchange_code_keeps_refresh_token_and_api_domain(zoho_tokens, http):
    http.post(ZOHO_TOKEN_URL, json={**zoho_refresh_body(5), "refresh_token": "zoho-refresh-5"})

    tokens = zoho_tokens.exchange_code("grant-code", "https://connector.example/zoho/callback")

    assert form(http.calls[0])["grant_type"] == "authorization_code"
    assert tokens.refresh_token.reveal() == "zoho-refresh-5"
    assert tokens.extra == {"api_domain": ZOHO_API_DOMAIN}


class CountingCredentials:
    """The real CredentialStore, counting reads."""

    def __init__(self, credentials) -> None:
        self._credentials = credentials
        self.loads = 0

    def load(self, *args, **kwargs):
        self.loads += 1
        return self._credentials.load(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._credentials, name)


def test_a_managers_calls_read_the_stored_token_once_and_a_401_reads_it_again(xero_tokens, credentials,
                                                                              connection_id, http, session, clock):
    counting = CountingCredentials(credentials)
    xero_tokens._credentials = counting
    client = XeroClient(session=session, tokens=xero_tokens, tenant_id="t", api_url=XERO_API_URL)
    for n in range(3):
        http.get(XERO_API_URL + f"/api.xro/2.0/Contacts/c-{n}", json={"Contacts": [{"ContactID": f"c-{n}"}]})
    for n in range(3):
        client.get_record("contacts", f"c-{n}")
    assert counting.loads == 1  # one read serves a task's calls while the token is good

    # Another process refreshed and Xero no longer takes the old token: the 401 makes us read again.
    credentials.save(connection_id, "xero", token_set(clock, access="xero-access-9", refresh="xero-refresh-9"),
                     expected_version=1)
    http.get(XERO_API_URL + "/api.xro/2.0/Contacts/c-9", status=401, json={"Title": "Unauthorized"})
    http.get(XERO_API_URL + "/api.xro/2.0/Contacts/c-9", json={"Contacts": [{"ContactID": "c-9"}]})
    client.get_record("contacts", "c-9")
    assert http.calls[-1].request.headers["Authorization"] == "Bearer xero-access-9"
    assert counting.loads > 1
