"""Builds the real collaborators (store, vault, Redis, governor, clients) from Settings.

The only place that wires concrete classes together; tasks ask ``get_deps()`` and the demo
and tests call ``configure()`` with their own Settings (e.g. sandbox URLs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from connector.errors import ConfigError
from connector.http import make_session
from connector.ratelimit import Limits, XeroRateGovernor
from connector.redis_conn import connect_redis
from connector.settings import Settings
from connector.store import Store
from connector.store.connections import ConnectionInfo
from connector.store.credentials import CredentialStore
from connector.store.vault import Vault, load_or_create_local_keyring
from connector.xero.auth import XeroTokenManager
from connector.xero.client import XeroClient
from connector.zoho.auth import ZohoTokenManager
from connector.zoho.client import ZohoClient


@dataclass
class Deps:
    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def store(self) -> Store:
        return Store.open(self.settings.database_url)

    @cached_property
    def vault(self) -> Vault:
        keys = self.settings.vault_keys
        if not keys:
            if not self.settings.embedded:
                raise ConfigError("CONNECTOR_VAULT_KEYS is not set; generate one with `connector keygen`")
            keys = load_or_create_local_keyring(self.settings.data_dir)
        return Vault(keys)

    @cached_property
    def credentials(self) -> CredentialStore:
        return self.store.credentials(self.vault)

    @cached_property
    def redis(self):
        return connect_redis(self.settings.redis_url)

    @cached_property
    def governor(self) -> XeroRateGovernor:
        return XeroRateGovernor(self.redis)

    @cached_property
    def http(self):
        return make_session()

    def xero_tokens(self, connection_id: int) -> XeroTokenManager:
        return XeroTokenManager(
            connection_id=connection_id,
            credentials=self.credentials,
            redis=self.redis,
            session=self.http,
            token_url=f"{self.settings.xero_identity_url}/connect/token",
            client_id=self.settings.xero_client_id,
            client_secret=self.settings.xero_client_secret,
        )

    def zoho_tokens(self, connection_id: int) -> ZohoTokenManager:
        return ZohoTokenManager(
            connection_id=connection_id,
            credentials=self.credentials,
            redis=self.redis,
            session=self.http,
            accounts_url=self.settings.zoho_accounts_url,
            client_id=self.settings.zoho_client_id,
            client_secret=self.settings.zoho_client_secret,
        )

    def xero_client(self, connection: ConnectionInfo, *, priority: int = 0) -> XeroClient:
        return XeroClient(
            session=self.http,
            tokens=self.xero_tokens(connection.id),
            tenant_id=connection.xero_tenant_id,
            api_url=self.settings.xero_api_url,
            governor=self.governor,
            limits=Limits(day=connection.xero_daily_limit),
            priority=priority,
        )

    def zoho_client(self, connection: ConnectionInfo) -> ZohoClient:
        return ZohoClient(session=self.http, tokens=self.zoho_tokens(connection.id))


_deps: Deps | None = None
_deps_lock = threading.Lock()


def get_deps() -> Deps:
    global _deps
    with _deps_lock:
        if _deps is None:
            _deps = Deps(Settings.from_env())
        return _deps


def configure(settings: Settings) -> Deps:
    """Replace the process-wide collaborators (demo, tests, CLI overrides)."""
    global _deps
    with _deps_lock:
        _deps = Deps(settings)
        return _deps
