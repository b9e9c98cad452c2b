"""The operator console (webhooks/console/) on the embedded system (tests/system.py): the sandboxes over HTTP,
SQLite, fakeredis, the in-process broker; through Flask's test client or a real headless Chromium."""

from __future__ import annotations

import pytest

from tests.console.console_kit import console_app
from workers.app import app as celery_app


@pytest.fixture
def system_defaults() -> dict:
    return {"tenant": "Console Test Ltd"}


@pytest.fixture
def memory_broker():
    """Celery on the in-process broker: what the console enqueues waits there for an EmbeddedWorker."""
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    celery_app.conf.update(broker_url="memory://localhost/", broker_transport_options={"polling_interval": 0.02})
    celery_app.control.purge()  # the in-process broker outlives a test: no other test's messages here
    yield celery_app
    celery_app.control.purge()
    celery_app.conf.update(broker_url=saved[0], broker_transport_options=saved[1])


@pytest.fixture
def console(system, memory_broker):
    """A test client of the console on the default system, and the system."""
    app = console_app(system)
    return app.test_client(), system
