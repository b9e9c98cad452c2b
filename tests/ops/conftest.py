"""Operating commands on the embedded default (SQLite, in-process broker, fakeredis) against the
sandboxes over HTTP (tests/system.py): what a small user runs with no Redis at all."""

from __future__ import annotations

import pytest


@pytest.fixture
def system_defaults() -> dict:
    return {"tenant": "Ops Test Ltd"}


@pytest.fixture
def embedded(system):
    return system
