"""Audit retention: rows older than CONNECTOR_AUDIT_DAYS go, in batches, by the beat job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import ManualClock
from connector.errors import ConfigError
from connector.settings import Settings
from connector.store import Store
from connector.store.audit import AuditLog, RECEIVED, WRITTEN


def test_prune_deletes_only_rows_older_than_the_cutoff_in_batches(store: Store, connection_id: int) -> None:
    clock = ManualClock()
    audit = AuditLog(store.sessions, clock=clock)
    for n in range(7):  # one row a day, oldest first
        audit.record(connection_id=connection_id, record_type="invoice", record_id=f"old-{n}", stage=RECEIVED)
        clock.advance(timedelta(days=1))
    cutoff = clock.now() - timedelta(days=3)  # rows of days 0..3 are older than this
    for n in range(3):
        audit.record(connection_id=connection_id, record_type="invoice", record_id=f"new-{n}", stage=WRITTEN)

    assert audit.prune(cutoff, batch_size=2) == 4  # three batches: 2, 2, then 0
    remaining = {e.record_id for n in range(7) for e in audit.trail(connection_id, "invoice", f"old-{n}")}
    assert remaining == {"old-4", "old-5", "old-6"}
    assert audit.count() == 6
    assert audit.prune(cutoff, batch_size=2) == 0  # nothing left to delete: idempotent


def test_beat_job_uses_the_configured_days_and_zero_keeps_everything(store: Store, connection_id: int,
                                                                     tmp_path, monkeypatch) -> None:
    import celeryconfig
    from workers import deps as deps_module
    from workers.maintenance_tasks import prune_audit_trail

    assert celeryconfig.beat_schedule["prune-audit-trail"]["task"] == prune_audit_trail.name
    clock = ManualClock()
    old = AuditLog(store.sessions, clock=clock)
    old.record(connection_id=connection_id, record_type="contact", record_id="c-old", stage=RECEIVED)
    store.audit.record(connection_id=connection_id, record_type="contact", record_id="c-new", stage=RECEIVED)

    for days, expected in ((0, 0), (30, 1)):
        deps = deps_module.Deps(Settings(data_dir=tmp_path, audit_days=days))
        deps.__dict__["store"] = store  # the cached_property, pointed at this test's database
        monkeypatch.setattr(deps_module, "_deps", deps)
        assert prune_audit_trail.run() == expected
    assert store.audit.trail(connection_id, "contact", "c-old") == []
    assert len(store.audit.trail(connection_id, "contact", "c-new")) == 1


@pytest.mark.parametrize("raw", ["-1", "ninety", "1.5"])
def test_audit_days_must_be_a_non_negative_whole_number(raw: str) -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_AUDIT_DAYS"):
        Settings.from_env({"CONNECTOR_AUDIT_DAYS": raw})


def test_audit_days_default_and_override() -> None:
    assert Settings.from_env({}).audit_days == 90
    assert Settings.from_env({"CONNECTOR_AUDIT_DAYS": "0"}).audit_days == 0
