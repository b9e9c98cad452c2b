"""Settings: the only place that reads the environment, and the only place that parses it.

Every value is parsed here into its type, and every bad value is a ConfigError that names the
variable (``XERO_POLL_INTERVAL: '5 mins' is not a duration ...``), so a process never starts on a
half-understood configuration.

Production needs ``REDIS_URL``, ``DATABASE_URL``, ``CONNECTOR_VAULT_KEYS`` and the rest of
``PROCESS_NEEDS``; each entry point calls ``Settings.require(process)`` and refuses to start,
naming what is missing. The embedded stand-ins (fakeredis, an in-process broker, SQLite under
``var/``, a generated vault key) fill the gaps only for ``connector demo`` and when
``CONNECTOR_EMBEDDED=1`` asks for them explicitly: a production process that silently ran on them
would answer Xero 200 for events that sit in a broker no worker reads.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, MutableMapping
from urllib.parse import urlsplit

from connector.errors import ConfigError
from connector.queues import EMBEDDED_BROKER_URL
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
# accounting.settings.read opens GET /Organisation (its plan and base currency, for the fit report and `check`);
# the granular change split accounting.transactions and accounting.reports.read only, so the settings scope is
# the same for both kinds of app (https://developer.xero.com/documentation/guides/oauth2/scopes/,
# https://developer.xero.com/faq/granular-scopes).
XERO_DEFAULT_SCOPES = "offline_access accounting.contacts accounting.transactions accounting.settings.read"

EMBEDDED_PUBLIC_URL = "http://127.0.0.1:8000"
MIN_ADMIN_TOKEN_LENGTH = 16

_CLIENTS = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET")
# What each production process cannot run without. The receiver runs the connect flows (clients,
# vault, public URL for redirect URIs) and verifies Xero's signatures; workers refresh tokens and
# register Zoho channels at CONNECTOR_PUBLIC_URL.
PROCESS_NEEDS: dict[str, tuple[str, ...]] = {
    "receiver": ("REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL", "XERO_WEBHOOK_KEY",
                 *_CLIENTS),
    "worker": ("REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL", *_CLIENTS),
    # Beat only publishes, but it is one of the deployment's processes: started without what the workers it
    # feeds need, it would schedule work no worker can do, so it refuses like them.
    "beat": ("REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL"),
    # Flower only watches the broker (its own FLOWER_BASIC_AUTH check is in `connector flower`).
    "flower": ("REDIS_URL",),
    "cli": ("REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS"),
    # `connector connect` also sets up the Zoho channel, which points Zoho at CONNECTOR_PUBLIC_URL.
    "connect": ("REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL", *_CLIENTS),
    "migrate": ("DATABASE_URL",),
}
# `connector run` is the receiver and a worker (and beat) in one command.
PROCESS_NEEDS["run"] = tuple(dict.fromkeys(PROCESS_NEEDS["receiver"] + PROCESS_NEEDS["worker"]))
_IS_SET = {
    "REDIS_URL": lambda s: s.redis_url is not None,
    "DATABASE_URL": lambda s: bool(s.database_url),
    "CONNECTOR_VAULT_KEYS": lambda s: bool(s.vault_keys),
    "CONNECTOR_PUBLIC_URL": lambda s: bool(s.public_url),
    "XERO_WEBHOOK_KEY": lambda s: bool(s.xero_webhook_key),
    "XERO_CLIENT_ID": lambda s: bool(s.xero_client_id),
    "XERO_CLIENT_SECRET": lambda s: bool(s.xero_client_secret),
    "ZOHO_CLIENT_ID": lambda s: bool(s.zoho_client_id),
    "ZOHO_CLIENT_SECRET": lambda s: bool(s.zoho_client_secret),
}
_PROCESS_NAMES = {"cli": "this connector command", "migrate": "the migration", "connect": "`connector connect`",
                  "flower": "Flower", "run": "`connector run`"}
_HINTS = {"CONNECTOR_VAULT_KEYS": "CONNECTOR_VAULT_KEYS (make one with `connector keygen`)"}

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def parse_duration(name: str, raw: str, *, allow_zero: bool = False) -> float:
    """Seconds from ``300``, ``300s``, ``5m``, ``5min``, ``1h`` or ``1d``; a ConfigError naming ``name`` otherwise."""
    match = _DURATION.fullmatch(raw.strip().lower())
    if not match or (float(match["number"]) == 0 and not allow_zero):
        raise ConfigError(f"{name}: {raw!r} is not a duration; use seconds (300) or a number with a unit "
                          "(300s, 5m, 5min, 1h, 1d)")
    unit = (match["unit"] or "s")[0]
    return float(match["number"]) * _UNIT_SECONDS[unit]


def parse_hour(name: str, raw: str) -> int:
    """An hour of the day, 0-23 (UTC); a ConfigError naming ``name`` otherwise."""
    value = raw.strip()
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise ConfigError(f"{name}: {raw!r} is not an hour of the day; use 0 to 23 (UTC)")
    return int(value)


def parse_count(name: str, raw: str, default: int, *, minimum: int = 1) -> int:
    """A whole number of at least ``minimum``; ``default`` when unset."""
    if not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be {minimum} or more, not {value}")
    return value


def parse_share(name: str, raw: str, default: float) -> float:
    """A share above 0 and at most 1, as ``0.1`` or ``10%``; ``default`` when unset."""
    value = raw.strip()
    if not value:
        return default
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a share; use 0.1 or 10%") from None
    if not 0 < share <= 1:
        raise ConfigError(f"{name}: {raw!r} must be above 0 and at most 1 (100%)")
    return share


def parse_flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}: {raw!r} is not a yes/no value; use 1 or 0")


def parse_url(name: str, raw: str, schemes: tuple[str, ...], example: str) -> str:
    """``raw`` without a trailing slash, if it is a URL with one of ``schemes``. The value is never
    echoed: database and Redis URLs carry passwords."""
    try:
        parts = urlsplit(raw.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in schemes or not (parts.netloc or parts.path):
        raise ConfigError(f"{name}: not a usable URL; expected {' or '.join(s + '://' for s in schemes)}... "
                          f"(e.g. {example})")
    return raw.strip().rstrip("/")


def parse_database_url(raw: str, *, embedded_allowed: bool) -> str:
    """A PostgreSQL URL; SQLite only in the embedded mode (one process: several on one file is no store)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(raw.strip()).get_backend_name()
    except (ArgumentError, ValueError):
        backend = None
    if backend not in ("postgresql", "postgres", "sqlite"):
        raise ConfigError("DATABASE_URL: not a PostgreSQL or SQLite URL "
                          "(e.g. postgresql://user:password@host:5432/connector)")
    if backend == "sqlite" and not embedded_allowed:
        raise ConfigError("DATABASE_URL: SQLite is for the embedded mode only (CONNECTOR_EMBEDDED=1, one process); "
                          "production needs PostgreSQL (e.g. postgresql://user:password@host:5432/connector)")
    return raw.strip()


def parse_vault_keys(raw: str) -> Secret:
    """The key ring, checked now rather than at the first token a worker stores or reads."""
    from connector.store.vault import Vault

    try:
        Vault(raw)
    except ConfigError as exc:  # names keys by id or position only, never the key
        raise ConfigError(f"CONNECTOR_VAULT_KEYS: {exc}") from None
    return Secret(raw)


_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")


def parse_smtp(env: Mapping[str, str]) -> dict:
    """The alert e-mail settings. None set: no e-mail. A host without a sender and recipients, or the other
    way round, is refused rather than dropping alerts in silence."""
    host = (env.get("CONNECTOR_SMTP_HOST") or "").strip()
    others = [n for n in ("CONNECTOR_SMTP_FROM", "CONNECTOR_SMTP_TO", "CONNECTOR_SMTP_USER", "CONNECTOR_SMTP_PASSWORD")
              if env.get(n)]
    if not host:
        if others:
            raise ConfigError(f"CONNECTOR_SMTP_HOST: not set, but {', '.join(others)} is; set the mail server "
                              "(e.g. smtp.example.com) or unset the others")
        return {}
    sender = (env.get("CONNECTOR_SMTP_FROM") or "").strip()
    recipients = tuple(r.strip() for r in (env.get("CONNECTOR_SMTP_TO") or "").split(",") if r.strip())
    if not _ADDRESS.fullmatch(sender):
        raise ConfigError("CONNECTOR_SMTP_FROM: set it to the sender's address (e.g. connector@example.com) when "
                          "CONNECTOR_SMTP_HOST is set")
    if not recipients or not all(_ADDRESS.fullmatch(r) for r in recipients):
        raise ConfigError("CONNECTOR_SMTP_TO: set it to one or more addresses, comma-separated "
                          "(e.g. ops@example.com,finance@example.com) when CONNECTOR_SMTP_HOST is set")
    port_text = (env.get("CONNECTOR_SMTP_PORT") or "587").strip()
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"CONNECTOR_SMTP_PORT: {port_text!r} is not a port number (587 for STARTTLS)")
    user = (env.get("CONNECTOR_SMTP_USER") or "").strip()
    password = env.get("CONNECTOR_SMTP_PASSWORD") or ""
    if bool(user) != bool(password):
        raise ConfigError("CONNECTOR_SMTP_USER and CONNECTOR_SMTP_PASSWORD: set both (to log in) or neither")
    return {"smtp_host": host, "smtp_port": int(port_text), "smtp_user": user, "smtp_password": Secret(password),
            "smtp_from": sender, "smtp_to": recipients,
            "smtp_starttls": parse_flag("CONNECTOR_SMTP_STARTTLS", env.get("CONNECTOR_SMTP_STARTTLS") or "1")}


def load_env_file(environ: MutableMapping[str, str] | None = None) -> None:
    """Add the variables of the env file to the environment, each only where the environment does not set it
    (a real variable always wins). The file is ``CONNECTOR_ENV_FILE``, by default ``.env`` in the working
    directory (the one docker compose reads); empty: none. Every entry point calls this before it reads
    anything, so a process started by hand or from the Procfile sees what compose's services see.
    Parsed by python-dotenv (quotes, ``export``, comments and ``${VAR}`` as compose reads them)."""
    environ = os.environ if environ is None else environ
    name = environ.get("CONNECTOR_ENV_FILE", ".env")
    if not name or ("CONNECTOR_ENV_FILE" not in environ and not Path(name).is_file()):
        return  # none asked for, or no .env here: nothing to read
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"CONNECTOR_ENV_FILE: cannot read {name} ({getattr(exc, 'strerror', None) or exc})") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(f"{name} line {binding.original.line}: not NAME=value (quote a value that holds "
                              "spaces or #)")
    for key, value in dotenv_values(stream=io.StringIO(text)).items():
        if value is not None and key not in environ:
            environ[key] = value


def log_settings(env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """(LOG_LEVEL or None when unset, LOG_FORMAT): read apart from Settings so logging works before the
    rest is valid. LOG_FORMAT ``auto`` (default) means text on a terminal, JSON lines otherwise."""
    env = os.environ if env is None else env
    return env.get("LOG_LEVEL") or None, env.get("LOG_FORMAT") or "auto"


def platform_port(env: Mapping[str, str] | None = None) -> int | None:
    """PORT, which a PaaS sets for the process it routes HTTP to; None when unset."""
    return _port(os.environ if env is None else env, "PORT")


def metrics_port(env: Mapping[str, str]) -> int | None:
    """CONNECTOR_METRICS_PORT: where a worker host serves its own /metrics; None when unset."""
    return _port(env, "CONNECTOR_METRICS_PORT")


def _port(env: Mapping[str, str], name: str) -> int | None:
    """The port number in ``name``; None when unset; ConfigError when it is no port number."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}: {raw!r} is not a port number")
    return int(raw)


def metrics_address(env: Mapping[str, str]) -> str:
    """CONNECTOR_METRICS_ADDRESS: the interface a worker's /metrics listens on. That endpoint has no auth, so
    by default only this host reaches it (127.0.0.1); 0.0.0.0 (or a private interface's address) lets a
    scraper on another host in, behind a firewall."""
    raw = (env.get("CONNECTOR_METRICS_ADDRESS") or "").strip()
    if not raw:
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"CONNECTOR_METRICS_ADDRESS: {raw!r} is not an IP address; use 127.0.0.1 (this host "
                          "only, the default) or the address of the interface a scraper reaches") from None


def flower_basic_auth(env: Mapping[str, str] | None = None) -> str:
    """FLOWER_BASIC_AUTH (``user:password[,user2:password2]``); Flower itself reads it too."""
    env = os.environ if env is None else env
    return env.get("FLOWER_BASIC_AUTH", "")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    broker_url: str = EMBEDDED_BROKER_URL
    # Where Xero, Zoho and browsers reach the receiver: OAuth redirect URIs and Zoho's notify URL
    # are built from it, never from a request's Host header. Empty: not configured.
    public_url: str = EMBEDDED_PUBLIC_URL

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
    # The operator's credential for every route that starts, completes or changes a connection and
    # every status route (Bearer token, or the password of HTTP Basic user "operator"). Empty: those
    # routes answer 401 to everyone.
    admin_token: Secret = field(default_factory=lambda: Secret(""))

    # Seconds the Xero side waits to batch webhook ids into one IDs= fetch.
    xero_batch_window: float = 1.0
    # The shortest time between payment polls (payments have no webhook), used while open invoices changed
    # recently; and the hour (UTC) at which the contact consistency check is considered.
    xero_poll_interval: float = 300.0
    xero_sweep_hour: int = 3  # the daily full sweep runs at this hour, UTC (a crontab: deploys do not move it)
    # The Xero day budget (connector/budget.py, connector/xero_schedule.py): the limit assumed until an
    # organisation's responses teach it (Starter's 1,000), the share of it scheduled work may take, the
    # longest a payment may wait for its poll, how often a catch-up poll runs when nothing triggered one,
    # and how often the contact consistency check runs (the daily sweep's hour only considers it).
    xero_default_day_limit: int = 1000
    xero_scheduled_share: float = 0.10
    xero_payments_max_delay: float = 1800.0
    xero_safety_poll_interval: float = 8 * 3600.0
    xero_check_interval: float = 7 * 86400.0
    max_webhook_bytes: int = 1_000_000
    # Seconds a worker trusts its cached read of a Zoho org's modules and fields (ZOHO_ORG_TTL).
    zoho_org_ttl: float = 3600.0
    # How long Zoho work waits after a 429 (Zoho sends no Retry-After): connector/zoho/hooks.py.
    zoho_rate_limit_wait: float = 30.0
    # Our own Xero governor's per-tenant minute and in-flight bounds. Xero's are 60 and 5
    # (https://developer.xero.com/documentation/oauth2/limits); only a sandbox with relaxed limits
    # (benchmarks) sets them higher.
    # Days the audit trail keeps a row (CONNECTOR_AUDIT_DAYS); 0 keeps every row forever.
    audit_days: int = 90
    xero_minute_limit: int = 60
    xero_concurrent_limit: int = 5

    # Recovery timings: how long a dead worker's claim can hold work up. A claim on buffered ids or on a
    # Zoho record lapses after lease_seconds (CONNECTOR_LEASE_SECONDS); beat sweeps orphaned buffers every
    # sweep_interval (CONNECTOR_SWEEP_INTERVAL); a killed worker parent's unacknowledged messages come back
    # after visibility_timeout (CELERY_VISIBILITY_TIMEOUT). The task time limits and the longest broker
    # countdown derive from the visibility timeout, so none can come near it.
    lease_seconds: float = 120.0
    sweep_interval: float = 60.0
    visibility_timeout: float = 300.0

    # Alerts (connector/alerts.py): where one message per incident goes (a Slack-compatible incoming webhook,
    # whose URL is itself a credential, and/or e-mail), and when a condition is an incident.
    alert_webhook: Secret = field(default_factory=lambda: Secret(""))
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: Secret = field(default_factory=lambda: Secret(""))
    smtp_from: str = ""
    smtp_to: tuple[str, ...] = ()
    smtp_starttls: bool = True
    alert_failures_per_hour: int = 10
    alert_parked_age: float = 6 * 3600.0
    alert_quiet_period: float = 4 * 3600.0
    alert_silence: float = 600.0
    # The receiver probe (connector/receiver_probe.py): a worker GETs {public_url}/healthz every minute; off
    # (CONNECTOR_RECEIVER_PROBE=off) where workers cannot reach their own public URL by design.
    receiver_probe: bool = True

    # Whether the embedded stand-ins may fill what is not configured. Settings built in code (the demo,
    # tests) say what they want; from the environment only CONNECTOR_EMBEDDED=1 allows them.
    embedded_allowed: bool = True

    # Prometheus (connector/metrics.py). Each process of a gunicorn or Celery worker group writes its counters
    # to files in its group's folder for a scrape to add up: by default a folder of the group's own under
    # metrics_base_dir (CONNECTOR_METRICS_DIR); PROMETHEUS_MULTIPROC_DIR names one folder exactly (one group
    # per folder). metrics_port (CONNECTOR_METRICS_PORT): where a Celery worker serves its group's /metrics.
    metrics_base_dir: Path = Path(tempfile.gettempdir()) / "ml-connector-metrics"
    metrics_dir: Path | None = None
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"

    @property
    def task_time_limit(self) -> float:
        """Kills a stuck task well before the broker would deliver it again (visibility timeout)."""
        return self.visibility_timeout * 0.8

    @property
    def task_soft_time_limit(self) -> float:
        return self.visibility_timeout * 0.7

    @property
    def max_broker_countdown(self) -> float:
        """The longest wait a task may spend as a broker countdown; longer waits are parked in the database.
        With the Redis transport a message waiting for its ETA is unacknowledged, so a countdown near the
        visibility timeout would be delivered twice."""
        return min(120.0, self.visibility_timeout * 0.4)

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: fakeredis and an in-process broker stand in."""
        return self.redis_url is None

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    def missing_for(self, process: str) -> list[str]:
        """The variables ``process`` needs that are not set; none when the embedded mode was asked for."""
        if self.embedded_allowed:
            return []
        return [name for name in PROCESS_NEEDS[process] if not _IS_SET[name](self)]

    def require(self, process: str) -> None:
        """Fail closed: a ConfigError naming every missing variable unless ``process`` has what it needs."""
        missing = self.missing_for(process)
        if missing:
            raise ConfigError(
                f"{_PROCESS_NAMES.get(process, 'the ' + process)} cannot start: {', '.join(_HINTS.get(n, n) for n in missing)} not set "
                "(CONNECTOR_EMBEDDED=1 runs on embedded stand-ins instead, for one-process use only)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(name) or default

        embedded_allowed = parse_flag("CONNECTOR_EMBEDDED", get("CONNECTOR_EMBEDDED"))
        data_dir = Path(get("CONNECTOR_DATA_DIR", "var"))
        redis_url = (parse_url("REDIS_URL", env["REDIS_URL"], ("redis", "rediss", "unix"), "redis://host:6379/0")
                     if env.get("REDIS_URL") else None)
        dc = get("ZOHO_DC", "us").lower()
        if dc not in ZOHO_ACCOUNTS_SERVERS and not env.get("ZOHO_ACCOUNTS_URL"):
            raise ConfigError(
                f"ZOHO_DC: {dc!r} is not a Zoho data centre; use one of "
                f"{', '.join(sorted(ZOHO_ACCOUNTS_SERVERS))} or set ZOHO_ACCOUNTS_URL"
            )
        if env.get("CONNECTOR_PUBLIC_URL"):
            public_url = parse_url("CONNECTOR_PUBLIC_URL", env["CONNECTOR_PUBLIC_URL"], ("https", "http"),
                                   "https://connector.example.com")
        else:
            public_url = EMBEDDED_PUBLIC_URL if embedded_allowed else ""
        admin_token = get("CONNECTOR_ADMIN_TOKEN")
        if admin_token and len(admin_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(f"CONNECTOR_ADMIN_TOKEN: shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; make a "
                              "long random one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")

        def url(name: str, default: str) -> str:
            return parse_url(name, env[name], ("https", "http"), default) if env.get(name) else default

        def duration(name: str, default: float, **options) -> float:
            return parse_duration(name, env[name], **options) if env.get(name) else default

        smtp = parse_smtp(env)
        return cls(
            data_dir=data_dir,
            database_url=(parse_database_url(env["DATABASE_URL"], embedded_allowed=embedded_allowed)
                          if env.get("DATABASE_URL") else
                          f"sqlite:///{(data_dir / 'connector.db').as_posix()}" if embedded_allowed else ""),
            redis_url=redis_url,
            broker_url=get("CELERY_BROKER_URL") or redis_url or EMBEDDED_BROKER_URL,
            public_url=public_url,
            xero_client_id=get("XERO_CLIENT_ID"),
            xero_client_secret=Secret(get("XERO_CLIENT_SECRET")),
            xero_webhook_key=Secret(get("XERO_WEBHOOK_KEY")),
            xero_api_url=url("XERO_API_URL", cls.xero_api_url),
            xero_identity_url=url("XERO_IDENTITY_URL", cls.xero_identity_url),
            xero_login_url=url("XERO_LOGIN_URL", cls.xero_login_url),
            xero_scopes=get("XERO_SCOPES", XERO_DEFAULT_SCOPES),
            zoho_client_id=get("ZOHO_CLIENT_ID"),
            zoho_client_secret=Secret(get("ZOHO_CLIENT_SECRET")),
            zoho_dc=dc,
            zoho_accounts_url=(url("ZOHO_ACCOUNTS_URL", "") or ZOHO_ACCOUNTS_SERVERS[dc]),
            vault_keys=(parse_vault_keys(env["CONNECTOR_VAULT_KEYS"]) if env.get("CONNECTOR_VAULT_KEYS") else
                        Secret("")),
            admin_token=Secret(admin_token),
            xero_batch_window=duration("XERO_BATCH_WINDOW", cls.xero_batch_window, allow_zero=True),
            xero_poll_interval=duration("XERO_POLL_INTERVAL", cls.xero_poll_interval),
            xero_default_day_limit=parse_count("XERO_DEFAULT_DAY_LIMIT", get("XERO_DEFAULT_DAY_LIMIT"),
                                               cls.xero_default_day_limit),
            xero_scheduled_share=parse_share("XERO_SCHEDULED_SHARE", get("XERO_SCHEDULED_SHARE"),
                                             cls.xero_scheduled_share),
            xero_payments_max_delay=duration("XERO_PAYMENTS_MAX_DELAY", cls.xero_payments_max_delay),
            xero_safety_poll_interval=duration("XERO_SAFETY_POLL_INTERVAL", cls.xero_safety_poll_interval),
            xero_check_interval=duration("XERO_CHECK_INTERVAL", cls.xero_check_interval),
            xero_sweep_hour=parse_hour("XERO_SWEEP_HOUR", env["XERO_SWEEP_HOUR"]) if env.get("XERO_SWEEP_HOUR") else
            cls.xero_sweep_hour,
            zoho_org_ttl=duration("ZOHO_ORG_TTL", cls.zoho_org_ttl),
            zoho_rate_limit_wait=duration("ZOHO_RATE_LIMIT_WAIT", cls.zoho_rate_limit_wait),
            lease_seconds=duration("CONNECTOR_LEASE_SECONDS", cls.lease_seconds),
            sweep_interval=duration("CONNECTOR_SWEEP_INTERVAL", cls.sweep_interval),
            visibility_timeout=duration("CELERY_VISIBILITY_TIMEOUT", cls.visibility_timeout),
            embedded_allowed=embedded_allowed,
            audit_days=parse_count("CONNECTOR_AUDIT_DAYS", get("CONNECTOR_AUDIT_DAYS"), cls.audit_days, minimum=0),
            xero_minute_limit=parse_count("XERO_MINUTE_LIMIT", get("XERO_MINUTE_LIMIT"), cls.xero_minute_limit),
            xero_concurrent_limit=parse_count("XERO_CONCURRENT_LIMIT", get("XERO_CONCURRENT_LIMIT"),
                                              cls.xero_concurrent_limit),
            metrics_base_dir=Path(get("CONNECTOR_METRICS_DIR")) if get("CONNECTOR_METRICS_DIR") else cls.metrics_base_dir,
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env.get("PROMETHEUS_MULTIPROC_DIR") else None,
            metrics_port=metrics_port(env),
            metrics_address=metrics_address(env),
            alert_webhook=(Secret(parse_url("CONNECTOR_ALERT_WEBHOOK", env["CONNECTOR_ALERT_WEBHOOK"],
                                            ("https", "http"), "https://hooks.slack.com/services/..."))
                           if env.get("CONNECTOR_ALERT_WEBHOOK") else Secret("")),
            **smtp,
            alert_failures_per_hour=parse_count("CONNECTOR_ALERT_FAILURES_PER_HOUR",
                                                get("CONNECTOR_ALERT_FAILURES_PER_HOUR"), cls.alert_failures_per_hour),
            alert_parked_age=duration("CONNECTOR_ALERT_PARKED_AGE", cls.alert_parked_age),
            alert_quiet_period=duration("CONNECTOR_ALERT_QUIET_PERIOD", cls.alert_quiet_period),
            alert_silence=duration("CONNECTOR_ALERT_SILENCE", cls.alert_silence),
            receiver_probe=(parse_flag("CONNECTOR_RECEIVER_PROBE", env["CONNECTOR_RECEIVER_PROBE"])
                            if env.get("CONNECTOR_RECEIVER_PROBE") else cls.receiver_probe),
        )

