"""Settings: the only place that reads the environment.

With no environment at all the connector runs on its embedded default: SQLite under
``var/``, fakeredis instead of Redis, an in-process broker, and the built-in sandbox
standing in for Xero and Zoho. Setting ``REDIS_URL``, ``DATABASE_URL`` and real
credentials makes the same code run distributed against the real services.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from connector.errors import ConfigError
from connector.secret import Secret

# Zoho's accounts server per data centre (Zoho multi-DC docs). CA is zohocloud.ca, not zoho.ca.
ZOHO_ACCOUNTS_SERVERS = {
    "us": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "in": "https://accounts.zoho.in",
    "au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
    "cn": "https://accounts.zoho.com.cn",
    "uk": "https://accounts.zoho.uk",
}

# Broad scopes work for apps made before 2 March 2026; newer apps must use the granular ones.
XERO_DEFAULT_SCOPES = "offline_access accounting.contacts accounting.transactions"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    broker_url: str = "memory://"
    public_url: str = "http://127.0.0.1:8000"

    xero_client_id: str = ""
    xero_client_secret: Secret = field(default_factory=lambda: Secret(""))
    xero_webhook_key: Secret = field(default_factory=lambda: Secret(""))
    xero_api_url: str = "https://api.xero.com"
    xero_identity_url: str = "https://identity.xero.com"
    xero_login_url: str = "https://login.xero.com"
    xero_scopes: str = XERO_DEFAULT_SCOPES

    zoho_client_id: str = ""
    zoho_client_secret: Secret = field(default_factory=lambda: Secret(""))
    zoho_dc: str = "us"
    zoho_accounts_url: str = ZOHO_ACCOUNTS_SERVERS["us"]

    # "kid:base64key,kid2:base64key"; the first key encrypts, all of them decrypt.
    vault_keys: Secret = field(default_factory=lambda: Secret(""))

    # Seconds the Xero side waits to batch webhook ids into one IDs= fetch.
    xero_batch_window: float = 1.0
    # Issue 3: seconds between If-Modified-Since polls (payments arrive only this way), and between
    # full sweeps (what If-Modified-Since cannot see, e.g. contact balances).
    xero_poll_interval: float = 300.0
    xero_sweep_interval: float = 86400.0
    max_webhook_bytes: int = 1_000_000
    # Seconds a worker trusts its cached read of a Zoho org's modules and fields (ZOHO_ORG_TTL).
    zoho_org_ttl: float = 3600.0

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: fakeredis and an in-process broker stand in."""
        return self.redis_url is None

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("CONNECTOR_DATA_DIR", "var"))
        redis_url = env.get("REDIS_URL") or None
        dc = env.get("ZOHO_DC", "us").lower()
        if dc not in ZOHO_ACCOUNTS_SERVERS and not env.get("ZOHO_ACCOUNTS_URL"):
            raise ConfigError(
                f"ZOHO_DC={dc!r} is not a Zoho data centre; use one of "
                f"{', '.join(sorted(ZOHO_ACCOUNTS_SERVERS))} or set ZOHO_ACCOUNTS_URL"
            )
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{(data_dir / 'connector.db').as_posix()}",
            redis_url=redis_url,
            broker_url=env.get("CELERY_BROKER_URL") or redis_url or "memory://",
            public_url=env.get("CONNECTOR_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            xero_client_id=env.get("XERO_CLIENT_ID", ""),
            xero_client_secret=Secret(env.get("XERO_CLIENT_SECRET", "")),
            xero_webhook_key=Secret(env.get("XERO_WEBHOOK_KEY", "")),
            xero_api_url=env.get("XERO_API_URL", cls.xero_api_url).rstrip("/"),
            xero_identity_url=env.get("XERO_IDENTITY_URL", cls.xero_identity_url).rstrip("/"),
            xero_login_url=env.get("XERO_LOGIN_URL", cls.xero_login_url).rstrip("/"),
            xero_scopes=env.get("XERO_SCOPES", XERO_DEFAULT_SCOPES),
            zoho_client_id=env.get("ZOHO_CLIENT_ID", ""),
            zoho_client_secret=Secret(env.get("ZOHO_CLIENT_SECRET", "")),
            zoho_dc=dc,
            zoho_accounts_url=(env.get("ZOHO_ACCOUNTS_URL") or ZOHO_ACCOUNTS_SERVERS[dc]).rstrip("/"),
            vault_keys=Secret(env.get("CONNECTOR_VAULT_KEYS", "")),
            xero_batch_window=float(env.get("XERO_BATCH_WINDOW", "1.0")),
            xero_poll_interval=float(env.get("XERO_POLL_INTERVAL", "300")),
            xero_sweep_interval=float(env.get("XERO_SWEEP_INTERVAL", "86400")),
            zoho_org_ttl=float(env.get("ZOHO_ORG_TTL", "3600")),
        )
