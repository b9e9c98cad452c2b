"""The audit trail's log lines: a batch's records that reach an ordinary stage together share one line, naming
each record's id, sync id and detail in order; a warning stage, and a stage one record reached alone, keep the
line of one row. Every sync id of the trail is in the lines, and every row is still stored."""

from __future__ import annotations

import logging

from connector.store import Store
from connector.store.audit import FAILED, FETCHED, MAPPED, RECEIVED, WRITTEN, ZOHO_TO_XERO


def stage_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "connector.audit"]


def test_a_batch_logs_a_line_per_stage_and_a_line_per_failure(store: Store, connection_id: int, caplog) -> None:
    caplog.set_level(logging.INFO, logger="connector.audit")
    batch = store.audit.batch()
    for n in range(3):
        batch.record(connection_id=connection_id, record_type="invoice", record_id=f"i-{n}", sync_id=f"s-{n}",
                     stage=MAPPED, detail={"lines": n}, task_id="t-1")
    batch.record(connection_id=connection_id, record_type="invoice", record_id="i-3", sync_id="s-3",
                 stage=FAILED, detail={"reason": "no contact"}, task_id="t-1")
    for n in range(3):
        batch.record(connection_id=connection_id, record_type="invoice", record_id=f"i-{n}", sync_id=f"s-{n}",
                     stage=WRITTEN, detail={"zoho_id": f"z-{n}"}, task_id="t-1")
    batch.record(connection_id=connection_id, record_type="contact", record_id="c-1", sync_id="s-c",
                 stage=WRITTEN, detail={"zoho_id": "z-c"}, task_id="t-1")
    assert not stage_lines(caplog)  # logged when the batch is written
    assert batch.flush() == 8

    lines = stage_lines(caplog)
    assert [(r.getMessage(), r.levelno) for r in lines] == [
        ("sync.mapped", logging.INFO), ("sync.failed", logging.WARNING), ("sync.written", logging.INFO),
        ("sync.written", logging.INFO)]
    mapped, failed, written, contact = lines
    assert (mapped.xero_ids, mapped.sync_ids, mapped.details, mapped.records) == (
        ["i-0", "i-1", "i-2"], ["s-0", "s-1", "s-2"], [{"lines": 0}, {"lines": 1}, {"lines": 2}], 3)
    assert (mapped.connection_id, mapped.record_type, mapped.task_id, mapped.stage) == (
        connection_id, "invoice", "t-1", MAPPED)
    assert not hasattr(mapped, "xero_id") and not hasattr(mapped, "sync_id")
    assert written.xero_ids == ["i-0", "i-1", "i-2"] and written.details == [{"zoho_id": f"z-{n}"} for n in range(3)]
    # A failure and a record alone at its stage: the line of one row, as before.
    assert (failed.xero_id, failed.sync_id, failed.detail) == ("i-3", "s-3", {"reason": "no contact"})
    assert (contact.xero_id, contact.sync_id, contact.record_type) == ("c-1", "s-c", "contact")
    assert not hasattr(contact, "xero_ids")
    # The trail holds every row.
    assert [e.stage for e in store.audit.trail(connection_id, "invoice", "i-1")] == [MAPPED, WRITTEN]


def test_a_line_without_details_leaves_them_out_and_names_zoho_ids_the_other_way(store: Store, connection_id: int,
                                                                                caplog) -> None:
    caplog.set_level(logging.INFO, logger="connector.audit")
    store.audit.record_many([dict(connection_id=connection_id, record_type="contact", record_id=f"z-{n}",
                                  sync_id=f"s-{n}", stage=RECEIVED, direction=ZOHO_TO_XERO) for n in range(2)]
                            + [dict(connection_id=connection_id, record_type="contact", record_id="z-0",
                                    sync_id="s-0", stage=FETCHED, direction=ZOHO_TO_XERO)])
    received, fetched = stage_lines(caplog)
    assert (received.zoho_ids, received.sync_ids, received.direction) == (["z-0", "z-1"], ["s-0", "s-1"], ZOHO_TO_XERO)
    assert not hasattr(received, "details")
    assert (fetched.zoho_id, fetched.sync_id) == ("z-0", "s-0")
    assert len(store.audit.trail(connection_id, "contact", "z-0")) == 2
