"""The pipeline against the Xero and Zoho sandboxes over HTTP, real Redis and a SQLite store (tests/system.py)."""

from __future__ import annotations

import pytest

from workers.app import app as celery_app


@pytest.fixture
def system_defaults() -> dict:
    return {"redis": "picture", "tenant": "Picture Test Ltd"}


@pytest.fixture
def picture(system):
    return system


@pytest.fixture
def memory_broker():
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    celery_app.conf.update(broker_url="memory://localhost/", broker_transport_options={"polling_interval": 0.02})
    celery_app.control.purge()  # the in-process broker outlives a test: no other test's messages here
    yield
    celery_app.control.purge()
    celery_app.conf.update(broker_url=saved[0], broker_transport_options=saved[1])
