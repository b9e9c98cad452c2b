"""The tasks themselves, run in this process the way a worker runs them, against the Xero and Zoho
sandboxes over HTTP, real Redis and a throwaway PostgreSQL database (tests/system.py).

``published`` records every task message handed to the broker (Celery's before_task_publish signal),
so a test sees exactly what a worker would receive next, and ``run`` executes one such message.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from celery.signals import before_task_publish

from workers.app import app


@dataclass
class Published:
    name: str
    args: list
    kwargs: dict
    eta: str | None
    retries: int


class PublishedLog(list):
    def named(self, name: str) -> list[Published]:
        return [p for p in self if p.name == name]

    def take(self, name: str) -> list[Published]:
        """The messages of one task, removed from the log (as a worker takes them off the queue)."""
        taken = self.named(name)
        self[:] = [p for p in self if p.name != name]
        return taken


@pytest.fixture
def published():
    log = PublishedLog()

    def record(sender=None, body=None, headers=None, **_):
        args, kwargs, _embed = body
        log.append(Published(sender, list(args), dict(kwargs), headers.get("eta"), int(headers.get("retries") or 0)))

    before_task_publish.connect(record, weak=False)
    yield log
    before_task_publish.disconnect(record)


def run(message: Published):
    """Execute a published message as a worker would (retries, if any, run at once: eager)."""
    return app.tasks[message.name].apply(args=message.args, kwargs=message.kwargs, retries=message.retries)


def run_until_quiet(published: PublishedLog, *names: str, limit: int = 200) -> int:
    """Work the queue of the given tasks until nothing of theirs is left (each message once)."""
    ran = 0
    while messages := [m for name in names for m in published.take(name)]:
        for message in messages:
            run(message)
            ran += 1
            assert ran < limit, "the queue never went quiet"
    return ran


@pytest.fixture
def system_defaults(pg_database_url) -> dict:
    return {"redis": "reliability", "tenant": "Reliable Ltd", "database_url": pg_database_url}


@pytest.fixture
def world(system):
    return system
