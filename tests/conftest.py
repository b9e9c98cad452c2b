"""Fixtures shared by the whole suite: the real Redis and PostgreSQL on this machine.

Integration tests never skip: when a service is unreachable they fail with a message saying
what to start (``make test`` starts both when they are installed locally).
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Property tests run beside real processes on two cores: how long an example or its generation takes says
# nothing about the code, so neither a deadline nor the slow-generation check may fail the suite.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUITE_EXAMPLES = settings.get_profile("suite").max_examples
# `make test-fast` (the edit-test loop) runs the "fast" profile: a tenth of the examples.
settings.register_profile("fast", parent=settings.get_profile("suite"), max_examples=SUITE_EXAMPLES // 10)


def pytest_configure(config):
    # Here, not at import: test modules import this file again (as tests.conftest), after the profile is chosen.
    settings.load_profile(config.getoption("--hypothesis-profile", None) or "suite")


def property_examples(thorough: int) -> int:
    """``max_examples`` for a property test that sets its own count: ``thorough`` under the suite's
    profile, scaled as the loaded profile scales the default (read when the test module is imported)."""
    return max(1, thorough * settings().max_examples // SUITE_EXAMPLES)

# A developer's .env in the checkout (README: `cp .env.example .env`) must reach neither the suite nor the
# processes it starts: each test says what its configuration is. Tests of the env file set their own.
os.environ["CONNECTOR_ENV_FILE"] = ""


# A suite started in the background by a shell without job control (`make test &` in a script, nohup) inherits
# SIGINT ignored, and so would every process it starts. Tests that press Ctrl-C on a command, as a person at a
# terminal does, need it delivered: the suite's processes take SIGINT as a terminal's processes do (a handled
# signal is reset to its default in a child at exec; an ignored one would stay ignored).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _worker_redis_server():
    """Under pytest-xdist each worker process gets a redis-server of its own on a free port: the tests use
    fixed database numbers and share broker queues within one, so two workers on one Redis would flush and
    consume each other's data. Started when this module is first imported in the worker (before any test
    module reads the address), announced to the rest of the process (and its children) via the environment."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TEST_WORKER_REDIS_PID"):
        return None
    import shutil
    import tempfile
    from pathlib import Path

    from tests.processes import RedisServer

    if shutil.which("redis-server") is None:
        raise RuntimeError("the suite on several processes (make test) starts a redis-server per process, and "
                           "there is none on PATH: install Redis, or run `python -m pytest` on one process")
    server = RedisServer(Path(tempfile.mkdtemp(prefix=f"mlc-test-{os.environ['PYTEST_XDIST_WORKER']}-")),
                         durable=False)
    server.start()
    os.environ.update(TEST_REDIS_HOST="127.0.0.1", TEST_REDIS_PORT=str(server.port),
                      TEST_WORKER_REDIS_PID=str(server.process.pid))
    return server


_WORKER_REDIS = _worker_redis_server()
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))
# Integration tests share one Redis database (broker queues live there); developers running two
# suites at once give each its own with TEST_INTEGRATION_REDIS_DB.
INTEGRATION_REDIS_DB = int(os.environ.get("TEST_INTEGRATION_REDIS_DB", "12"))
# The Redis database of each group of tests (Redis has 16): each group flushes its own, so one group's flush
# never clears another's keys (on a worker's redis-server, the groups' tests follow each other).
REDIS_DATABASES = {
    "connections": 3, "connections-cli": 4, "scale": 5, "scale-spare": 6, "picture": 7, "ratelimit": 8,
    "reliability": 9, "clients": 10, "webhooks": 11, "integration": INTEGRATION_REDIS_DB, "deploy": 13,
    "record-locks": 14, "webhooks-production": 15, "startup": 0, "queue-depths": 1, "alerts": 2,
}
if len(set(REDIS_DATABASES.values())) != len(REDIS_DATABASES):
    raise RuntimeError(f"two groups of tests share a Redis database: {REDIS_DATABASES} (tests/conftest.py)")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def redis_db(group: str) -> int:
    """The Redis database number of a group of tests."""
    if group not in REDIS_DATABASES:
        raise KeyError(f"no Redis database for {group!r}: give it a free one in REDIS_DATABASES (tests/conftest.py)")
    return REDIS_DATABASES[group]


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def require_redis(db: int):
    import redis

    client = redis.Redis.from_url(redis_url(db), decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc}); start it (make test does)")
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def pg_admin():
    import psycopg

    try:
        conn = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it (make test does)")
    yield conn
    conn.close()


@contextmanager
def fresh_pg_database(admin) -> Iterator[str]:
    """Create a uniquely named, empty PostgreSQL database; drop it afterwards.

    Its sessions commit without waiting for the WAL to reach the disk (an fsync per commit, 2–3 ms on this
    kind of machine, paid by every test that writes). A commit is just as visible, in the same order, to every
    session; it is lost only if the server itself crashes before the flush, which no test does: the outages
    the tests make end sessions or refuse connections (https://www.postgresql.org/docs/15/wal-async-commit.html)."""
    name = f"mlc_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresOutage:
    """Makes one database unreachable (new connections refused, open ones terminated) and reachable again,
    leaving the shared server and every other database alone (so other tests, and other xdist workers, go on).
    Also a context manager: unreachable inside the ``with``."""

    def __init__(self, admin, database: str) -> None:
        self.admin = admin
        self.database = database

    def begin(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                           (self.database,))

    def end(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    def for_seconds(self, seconds: float) -> threading.Timer:
        """Begin now; end after ``seconds`` on a timer (the test goes on meanwhile)."""
        self.begin()
        timer = threading.Timer(seconds, self.end)
        timer.daemon = True
        timer.start()
        return timer

    def __enter__(self) -> "PostgresOutage":
        self.begin()
        return self

    def __exit__(self, *exc) -> None:
        self.end()


@pytest.fixture
def pg_database_url(pg_admin):
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_pg_database(pg_admin) as url:
        yield url


# --- a distributed worker, as production runs it ------------------------------------------------

WORKER_QUEUES = ("xero", "zoho", "maintenance")


def sandbox_env(*, database_url: str, data_dir, vault_keys: str, xero, xero_url: str, zoho, zoho_url: str,
                **extra: str) -> dict[str, str]:
    """The environment a worker process needs to run against the sandboxes, PostgreSQL and Redis."""
    broker = redis_url(INTEGRATION_REDIS_DB)
    return {
        # Production processes refuse to start without it; nothing is delivered to it in tests.
        "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:9",
        "DATABASE_URL": database_url, "REDIS_URL": broker, "CELERY_BROKER_URL": broker,
        "CONNECTOR_DATA_DIR": str(data_dir), "CONNECTOR_VAULT_KEYS": vault_keys,
        "XERO_CLIENT_ID": xero.client_id, "XERO_CLIENT_SECRET": xero.client_secret,
        "XERO_WEBHOOK_KEY": xero.webhook_key, "XERO_API_URL": xero_url, "XERO_IDENTITY_URL": xero_url,
        "XERO_LOGIN_URL": xero_url, "ZOHO_CLIENT_ID": zoho.client_id, "ZOHO_CLIENT_SECRET": zoho.client_secret,
        "ZOHO_ACCOUNTS_URL": zoho_url, **extra,
    }


def start_celery_worker(env: dict[str, str], name: str, log_dir):
    """A real `celery worker` process on the integration broker, consuming every queue (a tests/processes.py
    ``Process``, its output in ``log_dir``)."""
    import sys

    from tests.processes import Process

    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", ",".join(WORKER_QUEUES),
            "-P", "threads", "-c", "4", "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle",
            "--without-gossip", "-n", f"{name}-{os.getpid()}@%h"]
    return Process(name, argv, env, log_dir).start()


def stop_celery_worker(worker) -> str:
    """Warm shutdown (SIGTERM), killed if it hangs; returns the tail of what it printed."""
    worker.stop(timeout=20)
    return worker.tail(5000)


def integration_broker(name: str):
    """A bare Celery app that only publishes (the receiver's side) on the integration broker."""
    from celery import Celery

    broker = Celery(name, broker=redis_url(INTEGRATION_REDIS_DB))
    broker.conf.update(task_serializer="json", accept_content=["json"])
    return broker


# --- the whole system under test (tests/system.py) --------------------------------------------------

@pytest.fixture
def system_defaults() -> dict:
    """The options of a folder's systems unless a test gives its own (a folder's conftest overrides this)."""
    return {}


@pytest.fixture
def make_system(tmp_path, system_defaults):
    """``make_system(**options)``: a system built by tests/system.py, stopped after the test."""
    from tests.system import Systems

    with Systems(tmp_path, **system_defaults) as systems:
        yield systems.build


@pytest.fixture
def system(make_system):
    """The folder's default system."""
    return make_system()


@pytest.fixture(autouse=True)
def _root_logger_restored():
    """A test that runs a `connector` command in-process installs the process's log handler and level
    (connector/logs.py); later tests get the root logger as pytest left it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


SEPARATE_FAULT_MODULES = ("tests/faults/test_faults_apis.py",)
# Modules whose tests assert on one run of a module-scoped fixture (a whole demo, tens of seconds): handed to
# one worker together, so the run is made once, not once on each worker that gets one of its tests.
SHARED_RUN_MODULES = ("tests/test_demo.py",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """How pytest-xdist (make test) hands tests to its workers: the fault suite's tests go to one worker
    (they share one deployment, started once per worker: tests/faults/conftest.py ``stack``), except the
    vendor-fault bursts, which wait minutes on the vendors' throttles and so run beside the rest on a second
    worker with a deployment of their own; the tests of a module in SHARED_RUN_MODULES go to one worker; every
    other test is handed out on its own to whichever worker is free. (xdist's own --dist loadgroup cannot mark
    them: it rewrites a node id field that pytest 9 no longer has.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":  # another --dist asked for explicitly: xdist's own
        return None

    class FaultSuiteTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SEPARATE_FAULT_MODULES + SHARED_RUN_MODULES):
                return nodeid.split("::", 1)[0]
            return "tests/faults" if nodeid.startswith("tests/faults/") else nodeid

    return FaultSuiteTogether(config, log)


# What marks a test ``services`` (pyproject.toml), which `make test-fast` leaves out. Fixtures that reach the
# real Redis, PostgreSQL or RabbitMQ, or run the whole system, used directly or through the fixtures a test uses:
SERVICE_FIXTURES = frozenset({"pg_admin", "real_redis", "broker_redis", "redis", "own_redis", "broker_url",
                              "make_system"})
# parametrised fixtures whose named variant reaches a service (their other variants run in memory):
SERVICE_VARIANTS = frozenset({("store", "postgresql"), ("empty_engine", "postgresql"), ("any_redis", "redis")})
# markers that mean real services by definition:
SERVICE_MARKERS = frozenset({"integration", "faults"})
# and modules that start processes (they import one of these, or a starter of tests/processes.py).
PROCESS_MODULES = frozenset({"subprocess", "multiprocessing", "tests.processes"})


def needs_services(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (not SERVICE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
            or any(params.get(fixture) == variant for fixture, variant in SERVICE_VARIANTS)
            or any(item.get_closest_marker(marker) for marker in SERVICE_MARKERS)
            or starts_processes(getattr(item, "module", None)))


def starts_processes(module) -> bool:
    def origin(value) -> str:
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        return name if isinstance(name, str) else ""

    return module is not None and any(
        origin(value) in PROCESS_MODULES or origin(value).split(".")[0] in PROCESS_MODULES
        for value in vars(module).values())


def pytest_collection_modifyitems(items):
    """Tests that need a service are marked ``services``. Tests marked ``start_early`` run first (the order
    is otherwise kept): on several processes the suite then never waits at its end for one long test that
    began late."""
    for item in items:
        if needs_services(item):
            item.add_marker("services")
    items.sort(key=lambda item: item.get_closest_marker("start_early") is None)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session):
    """Stop this worker's redis-server here, not at unconfigure: xdist ends a worker's process soon after
    its session finishes, and would leave the server running."""
    if _WORKER_REDIS is not None:
        import shutil

        _WORKER_REDIS.process.stop(timeout=5)
        shutil.rmtree(_WORKER_REDIS.dir.parent, ignore_errors=True)
