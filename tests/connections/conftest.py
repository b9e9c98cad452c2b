"""A connection world: both sandboxes over HTTP on one injectable clock, PostgreSQL, Redis db 3,
the vault, and the connect flows wired to them (Zoho channel set-up included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pytest
import requests

from connector.channels import ensure_channel
from connector.clock import Clock, ManualClock
from connector.connect import Connector
from connector.http import make_session
from connector.sandbox.common import ServedApp, serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store import Store
from connector.store.credentials import CredentialStore
from connector.store.vault import Vault
from connector.xero.auth import XeroTokenManager
from connector.zoho.auth import ZohoTokenManager
from connector.zoho.client import ZohoClient
from tests.conftest import redis_db, require_redis
from tests.processes import free_port
from webhooks import create_app

ADMIN_TOKEN = "operator-token-for-the-connect-tests"
REDIS_DB = redis_db("connections")
NOTIFY_URL = "http://127.0.0.1:9/webhooks/zoho"  # channels need one; nothing is delivered in these tests


@dataclass
class World:
    clock: Clock
    xero: XeroSandbox
    zoho: ZohoSandbox
    xero_server: ServedApp
    zoho_server: ServedApp
    settings: Settings
    store: Store
    vault: Vault
    credentials: CredentialStore
    redis: object
    session: requests.Session
    flows: Connector
    database_url: str
    vault_keyring: str

    def xero_tokens(self, connection_id: int, **options) -> XeroTokenManager:
        return XeroTokenManager(
            connection_id=self.credentials.owner_of(connection_id, "xero"), credentials=self.credentials,
            redis=self.redis, session=self.session, clock=self.clock, token_url=f"{self.xero_server.url}/connect/token",
            client_id=self.xero.client_id, client_secret=Secret(self.xero.client_secret), **options)

    def zoho_tokens(self, connection_id: int, **options) -> ZohoTokenManager:
        return ZohoTokenManager(
            connection_id=self.credentials.owner_of(connection_id, "zoho"), credentials=self.credentials,
            redis=self.redis, session=self.session, clock=self.clock, accounts_url=self.zoho_server.url,
            client_id=self.zoho.client_id, client_secret=Secret(self.zoho.client_secret), **options)

    def token_manager(self, system: str, connection_id: int, **options):
        return (self.xero_tokens if system == "xero" else self.zoho_tokens)(connection_id, **options)

    def zoho_client(self, connection_id: int) -> ZohoClient:
        return ZohoClient(session=self.session, tokens=self.zoho_tokens(connection_id))

    def consent(self, system: str, **options) -> list:
        """A person consents in a browser: follow the authorize URL to the (unserved) redirect."""
        redirect_uri = f"http://127.0.0.1:1/oauth/{system}/callback"
        url = self.flows.start(system, redirect_uri=redirect_uri, **options)
        answer = requests.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        return self.flows.finish_from_url(system, answer.headers["Location"])


def make_world(database_url: str, clock: Clock) -> Iterator[World]:
    redis = require_redis(REDIS_DB)
    xero, zoho = XeroSandbox(clock), ZohoSandbox(clock)
    xero_server, zoho_server = serve(xero), serve(zoho)
    settings = Settings(
        database_url=database_url, redis_url="redis://", xero_client_id=xero.client_id,
        xero_client_secret=Secret(xero.client_secret), xero_api_url=xero_server.url,
        xero_identity_url=xero_server.url, xero_login_url=xero_server.url, zoho_client_id=zoho.client_id,
        zoho_client_secret=Secret(zoho.client_secret), zoho_accounts_url=zoho_server.url,
    )
    store = Store.open(database_url, clock=clock)
    keyring = Vault.generate_keyring("k1")
    vault = Vault(keyring)
    credentials = store.credentials(vault)
    session = make_session()
    world = World(clock, xero, zoho, xero_server, zoho_server, settings, store, vault, credentials, redis, session,
                  None, database_url, keyring)  # type: ignore[arg-type]
    world.flows = Connector(
        settings=settings, store=store, credentials=credentials, redis=redis, session=session, clock=clock,
        on_zoho_connected=lambda owner: ensure_channel(owner, zoho=world.zoho_client(owner), channels=store.channels,
                                                       credentials=credentials, notify_url=NOTIFY_URL, clock=clock),
    )
    try:
        yield world
    finally:
        xero_server.shutdown()
        zoho_server.shutdown()
        store.close()


@pytest.fixture
def world(pg_database_url) -> Iterator[World]:
    yield from make_world(pg_database_url, ManualClock())

@pytest.fixture
def receiver(world):
    """The receiver with the connect routes, served where CONNECTOR_PUBLIC_URL says it is."""
    port = free_port()
    app = create_app(webhook_key=Secret("k"), enqueue=lambda *args: None, zoho_channels=world.store.channels,
                     oauth=world.flows, admin_token=ADMIN_TOKEN, public_url=f"http://127.0.0.1:{port}")
    with serve(app, port=port) as server:
        yield server


def browse(session: requests.Session, url: str, *, receiver_url: str, auth=None, hops: int = 5) -> requests.Response:
    """Follow redirects as a browser does: its cookies go along, and its operator login (HTTP Basic,
    cached by the browser for the receiver) is sent to the receiver only, never to Xero or Zoho."""
    from urllib.parse import urljoin

    for _ in range(hops):
        answer = session.get(url, allow_redirects=False, timeout=10,
                             auth=auth if url.startswith(receiver_url) else None)
        if answer.status_code not in (301, 302, 303, 307, 308):
            return answer
        url = urljoin(url, answer.headers["Location"])
    raise AssertionError(f"more than {hops} redirects")
