"""connector/logs.py's shortcuts for lines logged per record write what the stdlib's long way writes."""

from __future__ import annotations

import decimal
import io
import json
import logging
import os
import sys
import uuid
from datetime import datetime, timezone

import pytest

from connector import json_codec, logs

ODD_VALUES = {"zoho_id": "5725767000000412001", "contact_name": "Zoë Ltd", "amount": decimal.Decimal("1.10"),
              "when": datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc), "id": uuid.UUID(int=5),
              "ratio": float("nan"), "nested": [1, 2.5, {"a": None, 3: True}], "empty": {}}


def a_record(created: float = 1764540000.25, **extra) -> logging.LogRecord:
    record = logging.LogRecord("connector.audit", logging.INFO, __file__, 1, "sync.%s", ("written",), None)
    record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("c_encoder", [True, False], ids=["c-encoder", "python-encoder"])
def test_a_json_line_is_what_json_encoder_writes_with_or_without_its_c_encoder(monkeypatch, c_encoder):
    if not c_encoder:
        monkeypatch.setattr(json_codec, "_C_MAKE_ENCODER", None)
    formatter = logs.JsonLineFormatter()
    line = formatter.format(a_record(**ODD_VALUES, service="worker"))
    expected = {"time": logging.Formatter().formatTime(a_record()), "level": "INFO", "logger": "connector.audit",
                "message": "sync.written", **ODD_VALUES, "service": "worker"}
    assert line == json.JSONEncoder(ensure_ascii=False, default=str).encode(expected)
    assert "Zoë" in line and '"ratio": NaN' in line and '"amount": "1.10"' in line


def test_a_circular_value_fails_the_same_way_twice():
    loop: list = []
    loop.append(loop)
    formatter = logs.JsonLineFormatter()
    for _ in range(2):  # nothing of the first failure stays behind in the encoder
        with pytest.raises(ValueError, match="Circular reference"):
            formatter.format(a_record(loop=loop))
    assert json.loads(formatter.format(a_record(shared=[1])))["shared"] == [1]


def test_the_time_is_formatters_own_text_across_seconds_and_back():
    fast, stdlib = logs.JsonLineFormatter(), logging.Formatter()
    for created in (1764540000.0, 1764540000.999, 1764540001.0005, 1764540000.5, 1764543599.9999, 0.5):
        record = a_record(created)
        assert fast.formatTime(record) == stdlib.formatTime(record)
        assert fast.formatTime(record, "%H:%M") == stdlib.formatTime(record, "%H:%M")


def test_a_formatter_with_its_own_clock_keeps_it():
    fast, stdlib = logs.JsonLineFormatter(), logging.Formatter()
    fast.converter = stdlib.converter = __import__("time").gmtime
    record = a_record(1764540000.25)
    assert fast.formatTime(record) == stdlib.formatTime(record) == "2025-11-30 22:00:00,250"


@pytest.fixture
def records():
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            caught.append(record)

    logger = logging.getLogger("tests.log_fields")
    logger.setLevel(logging.INFO)
    handler = Keep()
    logger.addHandler(handler)
    yield logger, caught
    logger.removeHandler(handler)


def log_both_ways(logger, level, fields):
    logs.log_fields(logger, level, "sync.mapped", fields); fast_line = sys._getframe().f_lineno  # noqa: E702
    logger.log(level, "sync.mapped", extra=fields); slow_line = sys._getframe().f_lineno  # noqa: E702
    return fast_line, slow_line


def test_log_fields_makes_the_record_logger_log_makes(records):
    logger, caught = records
    fast_line, slow_line = log_both_ways(logger, logging.WARNING, {"sync_id": "s-1", "detail": {"lines": 2}})
    fast, slow = (vars(record) for record in caught)
    assert (fast["lineno"], slow["lineno"]) == (fast_line, slow_line)
    differ = {key for key in slow if fast[key] != slow[key]}
    assert differ <= {"lineno", "created", "msecs", "relativeCreated"}
    assert list(fast) == list(slow)  # the same fields in the same order, so the same line
    assert (fast["funcName"], fast["pathname"]) == ("log_both_ways", __file__)


def test_log_fields_writes_nothing_below_the_level(records):
    logger, caught = records
    logs.log_fields(logger, logging.DEBUG, "sync.mapped", {"sync_id": "s-1"})
    assert caught == []


def test_a_logger_class_of_its_own_finds_the_caller_its_own_way(records):
    logger, caught = records

    class Tagged(logging.Logger):
        def findCaller(self, stack_info=False, stacklevel=1):
            return "tagged.py", 7, "tagged", None

    def wrapper():
        logs.log_fields(logger, logging.INFO, "sync.mapped", {"sync_id": "s-1"})

    logger.__class__ = Tagged
    try:
        wrapper()
    finally:
        logger.__class__ = logging.Logger
    [record] = caught
    assert (record.pathname, record.lineno, record.funcName) == ("tagged.py", 7, "tagged")
    assert record.sync_id == "s-1"


@pytest.mark.parametrize("buffering", [1, -1], ids=["line-buffered", "block-buffered"])
def test_each_line_is_on_the_file_descriptor_when_emit_returns(buffering):
    read_end, write_end = os.pipe()
    stream = open(write_end, "w", buffering=buffering, encoding="utf-8")
    try:
        handler = logs.make_handler("worker", log_format="json", stream=stream)
        handler.handle(a_record(sync_id="s-1"))
        os.set_blocking(read_end, False)
        line = os.read(read_end, 65536).decode()
        assert line.endswith("\n") and json.loads(line)["sync_id"] == "s-1"
    finally:
        stream.close()
        os.close(read_end)


def test_a_stream_that_cannot_be_written_is_a_logging_error_not_a_crash():
    stream = io.StringIO()
    handler = logs.make_handler("worker", log_format="json", stream=stream)
    failures = []
    handler.handleError = failures.append
    stream.close()
    handler.handle(a_record())
    assert len(failures) == 1


@pytest.mark.parametrize("field", ["message", "asctime", "name", "lineno"])
def test_a_field_that_would_overwrite_the_record_is_refused_as_logger_log_refuses_it(records, field):
    logger, caught = records
    with pytest.raises(KeyError) as slow:
        logger.log(logging.INFO, "sync.mapped", extra={field: "x"})
    with pytest.raises(KeyError) as fast:
        logs.log_fields(logger, logging.INFO, "sync.mapped", {"sync_id": "s-1", field: "x"})
    assert str(fast.value) == str(slow.value) and caught == []
