"""The whole system under test, built one way: the Xero and Zoho sandboxes served over HTTP, the settings a
deployment would have for them, the process's deps configured on those (store, vault, credentials, Redis,
clients), and a connected tenant. Options say what differs between tests:

- ``database_url``: SQLite in the data dir unless a (PostgreSQL) URL is given;
- ``redis``: the group of tests whose Redis database to use (tests/conftest.py REDIS_DATABASES, flushed);
  None runs on the embedded fakeredis and in-process broker, as a small user does;
- ``clock``: the Xero sandbox, the deps and the store run on it (leases, parked work's resume_after, limits);
  the default Zoho sandbox keeps real time (its hour-long tokens would lapse as a test moves the clock);
- ``xero``/``zoho``: sandboxes of the test's own;
- ``tenant``: the name of the connected tenant, or None for none (the test connects its own);
- ``processes``: a real `celery worker` process on the Redis broker and the receiver served over HTTP, wired
  like production (``env``: more of the worker's environment);
- any other keyword changes a setting of this process's deps.

``make_system`` (tests/conftest.py) is the fixture; a folder's conftest sets its defaults with a
``system_defaults`` fixture. tests/deploy and the fault suite run the Procfile's processes themselves, on the
same pieces: ``Sandboxed`` (or the sandboxes' control API), ``sandbox_env`` and the grants of workers/demo.py.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from connector.clock import SYSTEM_CLOCK, Clock
from connector.pipeline import xero_in
from connector.sandbox.common import ServedApp, serve
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.secret import Secret
from connector.settings import Settings
from connector.store import Store
from connector.store.vault import Vault
from tests.conftest import (
    INTEGRATION_REDIS_DB,
    integration_broker,
    redis_db,
    redis_url,
    require_redis,
    sandbox_env,
    start_celery_worker,
    stop_celery_worker,
)
from tests.processes import Process
from workers.demo import Sandboxes, connect_sandbox_tenant, embedded_settings
from workers.deps import Deps, configure
from workers.zoho_tasks import make_zoho_push


@dataclass
class Sandboxed:
    """Both sandboxes, served over HTTP until ``close``."""

    xero: XeroSandbox
    zoho: ZohoSandbox
    xero_server: ServedApp
    zoho_server: ServedApp

    @classmethod
    def serve(cls, xero: XeroSandbox, zoho: ZohoSandbox) -> "Sandboxed":
        return cls(xero, zoho, serve(xero), serve(zoho))

    @property
    def sandboxes(self) -> Sandboxes:
        return Sandboxes(self.xero, self.zoho, self.xero_server.url, self.zoho_server.url)

    def env(self, *, database_url: str, data_dir: Path, vault_keys: str, **extra: str) -> dict[str, str]:
        """The environment a worker process needs to run against these sandboxes."""
        return sandbox_env(database_url=database_url, data_dir=data_dir, vault_keys=vault_keys, xero=self.xero,
                           xero_url=self.xero_server.url, zoho=self.zoho, zoho_url=self.zoho_server.url, **extra)

    def close(self) -> None:
        self.xero_server.shutdown()
        self.zoho_server.shutdown()


class OnSandboxes:
    """What runs on ``served``: its sandboxes and their servers by name."""

    served: Sandboxed
    xero = property(lambda self: self.served.xero, doc="the Xero sandbox")
    zoho = property(lambda self: self.served.zoho, doc="the Zoho sandbox")
    xero_server = property(lambda self: self.served.xero_server)
    zoho_server = property(lambda self: self.served.zoho_server)


class ReceivesWebhooks:
    """Where the webhook receiver served at ``receiver_url`` takes each vendor's notifications (a system of
    processes here, the fault suite's deployment in tests/faults/harness.py)."""

    receiver_url: str | None

    @property
    def hook_url(self) -> str:
        """Xero's webhook URL."""
        return f"{self.receiver_url}/webhooks/xero"

    @property
    def zoho_hook_url(self) -> str:
        return f"{self.receiver_url}/webhooks/zoho"


@dataclass(eq=False)  # one system is one system: tests key dicts by it
class System(OnSandboxes, ReceivesWebhooks):
    served: Sandboxed
    settings: Settings
    deps: Deps
    clock: Clock
    connection_id: int | None = None
    tenant_id: str | None = None
    worker: Process | None = None  # with processes=True
    receiver_url: str | None = None  # with processes=True
    env: dict[str, str] = field(default_factory=dict)  # the worker's, with processes=True

    @property
    def sandboxes(self) -> Sandboxes:
        return self.served.sandboxes

    @property
    def connection(self):
        return self.deps.store.connections.get(self.connection_id)

    def for_connection(self, connection_id: int, tenant_id: str) -> "System":
        """The same system, seen from another of its connections."""
        return replace(self, connection_id=connection_id, tenant_id=tenant_id)

    def connect(self, name: str) -> tuple[int, str]:
        """A new sandbox tenant with a stored grant: (connection id, tenant id)."""
        return connect_sandbox_tenant(self.deps, self.sandboxes, name)

    def client(self, connection_id: int | None = None, *, priority: int = 0):
        """The Xero client of a connection (the system's own unless another is named)."""
        connection = self.deps.store.connections.get(connection_id or self.connection_id)
        return self.deps.xero_client(connection, priority=priority)

    def push(self):
        return make_zoho_push(self.deps, self.connection)

    def fetch(self, resource: str, ids: list[str]) -> list[str]:
        batch = xero_in.FetchBatch(self.connection_id, resource, list(ids), {})
        return xero_in.fetch_xero_records(batch, xero=self.deps.xero_client(self.connection),
                                          snapshots=self.deps.store.snapshots, audit=self.deps.store.audit,
                                          transaction=self.deps.store.transaction)  # as the tasks do

    def sync(self, resource: str, ids: list[str]):
        self.fetch(resource, ids)
        push = self.push()
        return push.contacts(ids) if resource == "contacts" else push.invoices(ids)

    def pending_xero_ids(self, category: str) -> list[str]:
        return list(dict.fromkeys(e["resourceId"] for e in self.xero.pending_events() if e["eventCategory"] == category))

    def zoho_writes(self) -> int:
        """Requests that change something in Zoho, from the sandbox's own request log."""
        return sum(1 for r in self.zoho.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")
                   and r.path.startswith("/crm/"))


class Systems:
    """Builds systems in ``data_dir`` and stops everything they started on ``close`` (or leaving ``with``)."""

    def __init__(self, data_dir: Path, **defaults) -> None:
        self.data_dir = data_dir
        self.defaults = defaults
        self.started = ExitStack()

    def __enter__(self) -> "Systems":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.started.close()

    def build(self, **options) -> System:
        return self._build(**{**self.defaults, **options})

    def _build(self, *, database_url: str | None = None, redis: str | None = None, clock: Clock | None = None,
               xero: XeroSandbox | None = None, zoho: ZohoSandbox | None = None, tenant: str | None = "Test Ltd",
               processes: bool = False, env: dict[str, str] | None = None, **settings_changes) -> System:
        if processes and (redis, settings_changes) != ("integration", {}):
            raise ValueError("a system of processes runs on the integration broker; its settings come in env=")
        if redis is not None:
            require_redis(redis_db(redis))
        served = Sandboxed.serve(xero or XeroSandbox(clock), zoho or ZohoSandbox())
        self.started.callback(served.close)
        vault_keys = Vault.generate_keyring("k1")
        worker_env: dict[str, str] = {}
        if processes:
            worker_env = served.env(database_url=database_url or f"sqlite:///{self.data_dir / 'connector.db'}",
                                    data_dir=self.data_dir, vault_keys=vault_keys, **(env or {}))
            settings = Settings.from_env(worker_env)
        else:
            on_redis = {} if redis is None else {  # embedded: fakeredis, and the keyring in the data dir
                "redis_url": redis_url(redis_db(redis)), "vault_keys": Secret(vault_keys)}
            settings = embedded_settings(self.data_dir, served.sandboxes).with_overrides(
                **on_redis, **settings_changes)
            if database_url is not None:
                settings = settings.with_overrides(database_url=database_url)
        deps = configure(settings, clock=clock or SYSTEM_CLOCK)
        if clock is not None:
            deps.store = Store.open(settings.database_url, clock=clock)
        self.started.callback(deps.store.close)
        if redis is None:
            deps.redis.flushdb()  # the embedded fakeredis is shared by the whole process
        system = System(served, settings, deps, clock or SYSTEM_CLOCK, env=worker_env)
        if tenant is not None:
            system.connection_id, system.tenant_id = system.connect(tenant)
        if processes:
            self._start_processes(system)
        return system

    def _start_processes(self, system: System) -> None:
        from webhooks import create_app
        from webhooks.enqueue import celery_enqueuer

        assert system.settings.redis_url == redis_url(INTEGRATION_REDIS_DB)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        worker = system.worker = start_celery_worker(system.env, "itest", logs)
        self.started.callback(lambda: print(stop_celery_worker(worker)))
        receiver = create_app(webhook_key=system.xero.webhook_key,
                              enqueue=celery_enqueuer(integration_broker("itest-receiver")),
                              zoho_channels=system.deps.store.channels)
        receiver_server = serve(receiver)
        self.started.callback(receiver_server.shutdown)
        system.receiver_url = receiver_server.url
