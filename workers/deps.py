"""Builds the real collaborators (store, vault, Redis, governor, clients) from Settings.

The only place that wires concrete classes together; tasks ask ``get_deps()`` and the demo
and tests call ``configure()`` with their own Settings (e.g. sandbox URLs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from connector import metrics
from connector.alert_delivery import channels_from_settings
from connector.alerts import IncidentBook, Thresholds, TickReport, check_alerts, gather_facts
from connector.budget import BudgetLedger, BudgetPlanner
from connector.clock import SYSTEM_CLOCK, Clock
from connector.coalesce import XERO_FETCH_BUFFER, ZOHO_PUSH_BUFFER, LeasedBuffer
from connector.errors import ConfigError
from connector.heartbeats import Heartbeats
from connector.held_events import HeldXeroEvents
from connector.http import ResponseSeen, add_response_listener, make_session
from connector.mapping_config import SyncConfig, load_sync_config
from connector.ratelimit import Limits, XeroRateGovernor
from connector.receiver_probe import ReceiverProbe, disabled_reason
from connector.record_locks import RecordLocks
from connector.redis_conn import connect_redis
from connector.schedule_state import ScheduleState
from connector.settings import Settings
from connector.store import Store
from connector.store.connections import ConnectionInfo
from connector.store.credentials import CredentialStore
from connector.store.vault import Vault, load_or_create_local_keyring
from connector.xero.auth import XeroTokenManager
from connector.xero.client import XeroClient
from connector.xero_schedule import SchedulePolicy
from connector.zoho.auth import ZohoTokenManager
from connector.zoho.client import ZohoClient
from connector.zoho_setup import OrgCheck, check_org, needed_for


@dataclass
class Deps:
    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    _zoho_orgs: dict = field(default_factory=dict, repr=False)  # connection id -> (OrgCheck, read at)

    @cached_property
    def store(self) -> Store:
        if not self.settings.database_url:
            raise ConfigError("DATABASE_URL is not set")
        return Store.open(self.settings.database_url)

    @cached_property
    def vault(self) -> Vault:
        keys = self.settings.vault_keys
        if not keys:
            # A generated key in the data dir is for the embedded mode only: in production each
            # process would make its own, and none could read another's tokens.
            if not (self.settings.embedded and self.settings.embedded_allowed):
                raise ConfigError("CONNECTOR_VAULT_KEYS is not set; make one with `connector keygen`")
            keys = load_or_create_local_keyring(self.settings.data_dir)
        return Vault(keys)

    @cached_property
    def credentials(self) -> CredentialStore:
        return self.store.credentials(self.vault)

    @cached_property
    def redis(self):
        if self.settings.redis_url is None and not self.settings.embedded_allowed:
            raise ConfigError("REDIS_URL is not set")
        return connect_redis(self.settings.redis_url)

    @cached_property
    def governor(self) -> XeroRateGovernor:
        return XeroRateGovernor(self.redis, clock=self.clock)

    @cached_property
    def budget_ledger(self) -> BudgetLedger:
        def configured(connection_id: int) -> int | None:
            connection = self.store.connections.get(connection_id)
            return connection.xero_daily_limit if connection else None

        return BudgetLedger(self.redis, clock=self.clock, default_day_limit=self.settings.xero_default_day_limit,
                            configured_limit=configured)

    @cached_property
    def budget_planner(self) -> BudgetPlanner:
        return BudgetPlanner(self.redis, self.budget_ledger, clock=self.clock, share=self.settings.xero_scheduled_share)

    @cached_property
    def heartbeats(self) -> Heartbeats:
        return Heartbeats(self.redis, clock=self.clock)

    @cached_property
    def incident_book(self) -> IncidentBook:
        return IncidentBook(self.redis)

    @cached_property
    def alert_channels(self) -> dict:
        return channels_from_settings(self.settings)

    def check_alerts(self, watching_since: datetime | None = None) -> TickReport | None:
        """One alert evaluation over what this process's collaborators read (connector/alerts.py); never raises.
        ``watching_since``: when the evaluating process (beat) started, so a role never seen since is reported."""
        thresholds = Thresholds.of(self.settings)
        return check_alerts(
            book=self.incident_book, channels=self.alert_channels, thresholds=thresholds,
            facts=lambda: gather_facts(store=self.store, credentials=self.credentials, budget_ledger=self.budget_ledger,
                                       heartbeats=self.heartbeats, thresholds=thresholds,
                                       public_url=self.settings.public_url, watching_since=watching_since,
                                       receiver_probe=None if self.receiver_probe_off else self.receiver_probe))

    @property
    def receiver_probe_off(self) -> str | None:
        """Why the receiver is not probed here (embedded, switched off, no public URL); None: it is."""
        return disabled_reason(self.settings)

    @cached_property
    def receiver_probe(self) -> ReceiverProbe:
        """The probe of the receiver's public /healthz and its shared state (connector/receiver_probe.py)."""
        return ReceiverProbe(self.redis, public_url=self.settings.public_url, clock=self.clock)

    @cached_property
    def schedule_state(self) -> ScheduleState:
        return ScheduleState(self.redis, clock=self.clock)

    @property
    def schedule_policy(self) -> SchedulePolicy:
        s = self.settings
        return SchedulePolicy(safety_interval=s.xero_safety_poll_interval, payments_min_interval=s.xero_poll_interval,
                              payments_max_delay=s.xero_payments_max_delay, check_interval=s.xero_check_interval)

    @cached_property
    def coalescer(self) -> LeasedBuffer:
        """The shared per-(connection, resource) buffers of webhook ids awaiting one coalesced fetch."""
        return LeasedBuffer(self.redis, clock=self.clock, key_prefix=XERO_FETCH_BUFFER,
                            lease_seconds=self.settings.lease_seconds)

    @cached_property
    def zoho_buffer(self) -> LeasedBuffer:
        """The shared per-(connection, resource) buffers of fetched ids awaiting one batched Zoho upsert."""
        return LeasedBuffer(self.redis, clock=self.clock, key_prefix=ZOHO_PUSH_BUFFER,
                            lease_seconds=self.settings.lease_seconds)

    @cached_property
    def held_xero_events(self) -> HeldXeroEvents:
        """Webhook ids of Xero organisations not connected yet, until they are (connector/held_events.py)."""
        return HeldXeroEvents(self.redis, clock=self.clock)

    @cached_property
    def record_locks(self) -> RecordLocks:
        """One writer at a time per Zoho record. A dead writer's lock lapses with the buffers' lease; a
        waiter gives up (and retries later) well inside the task's soft time limit."""
        return RecordLocks(self.redis, ttl=self.settings.lease_seconds,
                           wait=min(60.0, self.settings.task_soft_time_limit / 3))

    @cached_property
    def http(self):
        return make_session()

    def xero_tokens(self, connection_id: int, **options) -> XeroTokenManager:
        """The manager of the token set this connection uses (one Xero consent may cover several tenants)."""
        return XeroTokenManager(
            connection_id=self.credentials.owner_of(connection_id, "xero"),
            credentials=self.credentials,
            redis=self.redis,
            session=self.http,
            token_url=f"{self.settings.xero_identity_url}/connect/token",
            client_id=self.settings.xero_client_id,
            client_secret=self.settings.xero_client_secret,
            clock=self.clock,
            **options,
        )

    def zoho_tokens(self, connection_id: int, **options) -> ZohoTokenManager:
        """The manager of the Zoho org's shared token set, at the accounts server of the org's data centre."""
        owner_id = self.credentials.owner_of(connection_id, "zoho")
        owner = self.store.connections.get(owner_id)
        return ZohoTokenManager(
            connection_id=owner_id,
            credentials=self.credentials,
            redis=self.redis,
            session=self.http,
            accounts_url=(owner and owner.zoho_accounts_url) or self.settings.zoho_accounts_url,
            client_id=self.settings.zoho_client_id,
            client_secret=self.settings.zoho_client_secret,
            clock=self.clock,
            **options,
        )

    # -- connect flows, token upkeep, Zoho channels

    def token_manager(self, system: str, connection_id: int, **options):
        return (self.xero_tokens if system == "xero" else self.zoho_tokens)(connection_id, **options)

    @property
    def zoho_notify_url(self) -> str:
        if not self.settings.public_url:
            raise ConfigError("CONNECTOR_PUBLIC_URL is not set; Zoho needs it to reach /webhooks/zoho")
        return f"{self.settings.public_url}/webhooks/zoho"

    def zoho_client_for(self, connection_id: int) -> ZohoClient:
        return ZohoClient(session=self.http, tokens=self.zoho_tokens(connection_id),
                          rate_limit_wait=self.settings.zoho_rate_limit_wait)

    def ensure_zoho_channel(self, owner_connection_id: int):
        from connector.channels import ensure_channel, watch_options

        return ensure_channel(owner_connection_id, zoho=self.zoho_client_for(owner_connection_id),
                              channels=self.store.channels, credentials=self.credentials,
                              notify_url=self.zoho_notify_url, **watch_options(self.sync_config))

    def connector(self):
        """The connect flows (CLI and the receiver's /oauth routes), wired to set up the Zoho channel
        and to resume parked work once a connection is active again."""
        from connector.connect import Connector

        def resume(connection_ids: list[int]) -> None:
            from workers.app import app

            app.send_task("connector.resume_parked_work", args=[connection_ids], queue="maintenance")

        return Connector(settings=self.settings, store=self.store, credentials=self.credentials, redis=self.redis,
                         session=self.http, on_zoho_connected=self.ensure_zoho_channel, on_connected=resume)

    def xero_client(self, connection: ConnectionInfo, *, priority: int = 0, dry_run: bool = False) -> XeroClient:
        return XeroClient(
            session=self.http,
            tokens=self.xero_tokens(connection.id),
            tenant_id=connection.xero_tenant_id,
            api_url=self.settings.xero_api_url,
            governor=self.governor,
            limits=Limits(minute=self.settings.xero_minute_limit, day=self.budget_ledger.governing_day_limit(connection.id),
                          concurrent=self.settings.xero_concurrent_limit),
            priority=priority,
            dry_run=dry_run,
        )

    def zoho_client(self, connection: ConnectionInfo) -> ZohoClient:
        return ZohoClient(session=self.http, tokens=self.zoho_tokens(connection.id),
                          rate_limit_wait=self.settings.zoho_rate_limit_wait)

    # -- the user's sync config and each Zoho org's capabilities --------------------------------

    @cached_property
    def sync_config(self) -> SyncConfig:
        """``mapping.yaml`` (or .json) in the data dir, validated at start; defaults without one."""
        for name in ("mapping.yaml", "mapping.yml", "mapping.json"):
            if (self.settings.data_dir / name).exists():
                return load_sync_config(self.settings.data_dir / name)
        return load_sync_config(None)

    def zoho_org(self, connection: ConnectionInfo, *, refresh: bool = False) -> OrgCheck:
        """The org's modules and our custom fields, read at most every ``zoho_org_ttl`` seconds per process
        (and on demand by the scheduled re-check). An unusable org is never cached: it raises each time."""
        now = self.clock.monotonic()
        with self._lock:
            cached = self._zoho_orgs.get(connection.id)
        if cached is not None and not refresh and now - cached[1] < self.settings.zoho_org_ttl:
            return cached[0]
        needed = needed_for(self.sync_config)
        return self.remember_zoho_org(connection.id, check_org(self.zoho_client(connection), needed))

    def remember_zoho_org(self, connection_id: int, check: OrgCheck) -> OrgCheck:
        """Cache a fresh read of the org (and return it), or forget the org and raise when it is unusable."""
        try:
            check.raise_if_unusable()
        except ConfigError:
            with self._lock:
                self._zoho_orgs.pop(connection_id, None)
            raise
        with self._lock:
            self._zoho_orgs[connection_id] = (check, self.clock.monotonic())
        return check


_deps: Deps | None = None
_deps_lock = threading.Lock()


def get_deps() -> Deps:
    global _deps
    with _deps_lock:
        if _deps is None:
            _deps = Deps(Settings.from_env())
        return _deps


def configure(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Deps:
    """Replace the process-wide collaborators (demo, tests, CLI overrides), and the task time limits,
    which derive from the settings' visibility timeout. The broker and the beat schedule stay as the
    process started: celeryconfig reads them once, before anything can be configured."""
    import celeryconfig
    from workers.app import app

    global _deps
    with _deps_lock:
        _deps = Deps(settings, clock=clock)
        app.conf.update(celeryconfig.time_limits(settings))
        return _deps


@add_response_listener
def count_in_the_day_budget(seen: ResponseSeen) -> None:
    """Every Xero response of this process goes into the day-budget ledger of the process's collaborators
    (connector/budget.py); nothing is counted before they exist."""
    deps = _deps
    if deps is not None and seen.vendor == "xero":
        deps.budget_ledger.listen(seen)


# Every Xero and Zoho response of this process, counted for /metrics (connector/metrics.py).
add_response_listener(metrics.count_api_call)
