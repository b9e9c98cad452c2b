"""Fixtures for the client tests: real Redis (db 10), a real credential store on SQLite, faked HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis as redis_lib
import responses

from connector.clock import ManualClock
from connector.http import make_session
from connector.ratelimit import XeroRateGovernor
from connector.secret import Secret
from connector.store.connections import ConnectionStore
from connector.store.credentials import CredentialStore, TokenSet
from connector.store.db import make_engine, make_session_factory, migrate
from connector.store.vault import Vault
from connector.xero.auth import XeroTokenManager
from connector.zoho.auth import ZohoTokenManager
from tests.conftest import redis_db, redis_url

REDIS_URL = redis_url(redis_db("clients"))

XERO_TOKEN_URL = "https://identity.xero.test/connect/token"
XERO_API_URL = "https://api.xero.test"
ZOHO_ACCOUNTS_URL = "https://accounts.zoho.test"
ZOHO_API_DOMAIN = "https://www.zohoapis.eu"
TENANT_ID = "fe79f7dd-0000-4000-8000-000000000001"
XERO_CLIENT_SECRET = "xero-client-secret-value"
ZOHO_CLIENT_SECRET = "zoho-client-secret-value"


@pytest.fixture
def redis():
    client = redis_lib.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis_lib.ConnectionError as exc:  # these tests need the real server: fail, never skip
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def session_factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'connector.db'}")
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def credentials(session_factory, clock):
    return CredentialStore(session_factory, Vault(Vault.generate_keyring()), clock=clock)


@pytest.fixture
def connection_id(session_factory, clock):
    return ConnectionStore(session_factory, clock=clock).create(name="Demo", xero_tenant_id=TENANT_ID).id


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def session():
    return make_session()


def token_set(clock, *, access: str, refresh: str, expires_in: float = 1800, **extra) -> TokenSet:
    return TokenSet(
        access_token=Secret(access),
        refresh_token=Secret(refresh),
        expires_at=clock.now() + timedelta(seconds=expires_in),
        extra=dict(extra),
    )


@pytest.fixture
def xero_tokens(credentials, connection_id, redis, session, clock):
    credentials.save(connection_id, "xero", token_set(clock, access="xero-access-1", refresh="xero-refresh-1"))
    return XeroTokenManager(
        connection_id=connection_id,
        credentials=credentials,
        redis=redis,
        session=session,
        token_url=XERO_TOKEN_URL,
        client_id="xero-client-id",
        client_secret=Secret(XERO_CLIENT_SECRET),
        clock=clock,
    )


@pytest.fixture
def zoho_tokens(credentials, connection_id, redis, session, clock):
    credentials.save(
        connection_id,
        "zoho",
        token_set(clock, access="zoho-access-1", refresh="zoho-refresh-1", expires_in=3600, api_domain=ZOHO_API_DOMAIN),
    )
    return ZohoTokenManager(
        connection_id=connection_id,
        credentials=credentials,
        redis=redis,
        session=session,
        accounts_url=ZOHO_ACCOUNTS_URL,
        client_id="zoho-client-id",
        client_secret=Secret(ZOHO_CLIENT_SECRET),
        clock=clock,
    )


@pytest.fixture
def governor(redis, clock):
    return XeroRateGovernor(redis, clock=clock, key_prefix="test-clients:ratelimit")
