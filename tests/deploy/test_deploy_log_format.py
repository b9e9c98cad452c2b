"""connector/logs.py: what a line looks like in each format, and what a task's line carries."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone

import pytest

from connector import logs
from connector.errors import ConfigError


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def emit():
    created = []

    def emit(stream, *, log_format="auto", **extra):
        logger = logging.getLogger("tests.logs")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logs.make_handler("worker", log_format=log_format, stream=stream)
        logger.handlers = [handler]
        created.append(logger)
        logger.info("polling.xero.done", extra=extra)
        return stream.getvalue()

    yield emit
    for logger in created:
        logger.handlers = []
        logger.propagate = True
    logs.clear()


def test_a_json_line_is_one_object_with_its_exception_and_any_value_written(emit):
    stream = io.StringIO()
    handler = logs.make_handler("web", log_format="json", stream=stream)
    logger = logging.getLogger("tests.logs.exceptions")
    logger.propagate = False
    logger.handlers = [handler]
    when = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    try:
        raise ValueError("bad row")
    except ValueError:
        logger.exception("sync.failed", extra={"at": when, "contact_name": "Zoë Ltd", "ids": ["a", "b"]})
    logger.handlers = []
    logger.propagate = True
    [line] = stream.getvalue().splitlines()  # the traceback stays inside the one line
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == ("ERROR", "tests.logs.exceptions", "sync.failed")
    assert record["exc_info"].startswith("Traceback") and record["exc_info"].endswith("ValueError: bad row")
    assert (record["at"], record["ids"], record["service"]) == (str(when), ["a", "b"], "web")
    assert "Zoë Ltd" in line  # written as it is, not as an escape
    assert datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f")


def test_json_lines_carry_every_extra_field_and_the_bound_context(emit):
    with logs.bound(sync_id="s-1", task_id="t-1", connection_id=3):
        line = emit(io.StringIO(), resource="contacts", changed=2, connection_id=4)
    record = json.loads(line)
    assert record["message"] == "polling.xero.done"
    assert (record["resource"], record["changed"]) == ("contacts", 2)
    assert (record["sync_id"], record["task_id"], record["service"]) == ("s-1", "t-1", "worker")
    assert record["connection_id"] == 4  # what the call says wins over the context
    assert record["level"] == "INFO" and record["logger"] == "tests.logs" and record["time"]


def test_a_terminal_gets_readable_text_with_the_fields_as_key_value(emit):
    with logs.bound(sync_id="s-1", xero_id="x-9"):
        line = emit(Terminal(), resource="contacts", changed=2, note="two words")
    assert "polling.xero.done" in line and not line.lstrip().startswith("{")
    # The sync's fields first, then the rest sorted; values with spaces quoted.
    assert line.rstrip().endswith("xero_id=x-9 sync_id=s-1 changed=2 note='two words' resource=contacts")


def test_the_context_is_gone_once_unbound(emit):
    token = logs.bind(sync_id="s-1")
    logs.unbind(token)
    assert "sync_id" not in json.loads(emit(io.StringIO()))


def test_bad_settings_name_the_variable():
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        logs.resolve_format("yaml", io.StringIO())
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        logs.resolve_level("LOUD")
    assert logs.resolve_format("auto", Terminal()) == "text"
    assert logs.resolve_format("auto", io.StringIO()) == "json"


def test_a_task_binds_the_sync_its_arguments_name():
    from workers.log_context import sync_fields
    from workers.xero_tasks import fetch_xero_records, ingest_xero_events
    from workers.zoho_tasks import push_records_to_zoho

    assert sync_fields(fetch_xero_records, [7, "invoices", ["i-1"], {"i-1": "s-1"}], {}) == {
        "connection_id": 7, "record_type": "invoice", "xero_id": "i-1", "sync_id": "s-1"}
    # A batch of several records: no single xero_id or sync_id (their own lines carry them).
    assert sync_fields(push_records_to_zoho, [7, "contacts", ["a", "b"], {"a": "s-a", "b": "s-b"}], {}) == {
        "connection_id": 7, "record_type": "contact"}
    event = {"resourceId": "c-1", "eventCategory": "CONTACT", "tenantId": "t", "sync_id": "s-9"}
    assert sync_fields(ingest_xero_events, [[event]], {}) == {
        "connection_id": None, "xero_id": "c-1", "sync_id": "s-9", "record_type": "contact"}


def test_a_task_whose_run_cannot_be_a_cache_key_still_binds_its_sync():
    from workers.log_context import sync_fields

    class Run:
        __hash__ = None  # type: ignore[assignment]  (an __eq__ of its own, say)

        def __call__(self, connection_id, resource, ids, sync_ids):
            pass

    class Task:
        run = Run()

    for _ in range(2):
        assert sync_fields(Task(), [7, "invoices", ["i-1"], {"i-1": "s-1"}], {}) == {
            "connection_id": 7, "record_type": "invoice", "xero_id": "i-1", "sync_id": "s-1"}
    assert sync_fields(Task(), [7, "invoices", ["i-1"], {}, "one too many"], {}) == {}
