"""A connection world: the system of tests/system.py with no tenant connected yet, both sandboxes on one
injectable clock, PostgreSQL, real Redis, and the connect flows wired to them (Zoho channel set-up included)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import pytest
import requests

from connector.channels import ensure_channel
from connector.clock import Clock, ManualClock
from connector.connect import Connector
from connector.sandbox.common import serve
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.store import Store
from connector.store.credentials import CredentialStore
from connector.store.vault import Vault
from connector.xero.auth import XeroTokenManager
from connector.zoho.auth import ZohoTokenManager
from connector.zoho.client import ZohoClient
from tests.processes import free_port
from tests.system import System
from webhooks import create_app

ADMIN_TOKEN = "operator-token-for-the-connect-tests"
NOTIFY_URL = "http://127.0.0.1:9/webhooks/zoho"  # channels need one; nothing is delivered in these tests


@dataclass(eq=False)
class World(System):
    """A system seen by the connect flows: its store, vault and credentials, token managers on its clock."""

    @property
    def store(self) -> Store:
        return self.deps.store

    @property
    def vault(self) -> Vault:
        return self.deps.vault

    @property
    def credentials(self) -> CredentialStore:
        return self.deps.credentials

    @property
    def redis(self):
        return self.deps.redis

    @property
    def session(self) -> requests.Session:
        return self.deps.http

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def vault_keyring(self) -> str:
        return self.settings.vault_keys.reveal()

    @cached_property
    def flows(self) -> Connector:
        return Connector(
            settings=self.settings, store=self.store, credentials=self.credentials, redis=self.redis,
            session=self.session, clock=self.clock,
            on_zoho_connected=lambda owner: ensure_channel(
                owner, zoho=self.zoho_client(owner), channels=self.store.channels, credentials=self.credentials,
                notify_url=NOTIFY_URL, clock=self.clock))

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


@pytest.fixture
def system_defaults(pg_database_url) -> dict:
    return {"redis": "connections", "database_url": pg_database_url, "tenant": None}


@pytest.fixture
def make_world(make_system) -> Callable[..., World]:
    """``make_world(clock, **options)``: a world on ``clock`` (the Zoho sandbox's too); options as make_system's."""
    def make(clock: Clock, **options) -> World:
        return World(**vars(make_system(clock=clock, zoho=ZohoSandbox(clock), **options)))

    return make


@pytest.fixture
def world(make_world) -> World:
    return make_world(ManualClock())


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
