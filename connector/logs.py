"""One logging setup for every process (receiver, worker, beat, Flower, CLI).

- Production (no terminal, or ``LOG_FORMAT=json``): one JSON object per line, every ``extra=`` field
  a key, so a log platform can filter on ``sync_id`` or ``connection_id``.
- A terminal (or ``LOG_FORMAT=text``): a readable line with the same fields as ``key=value``.
- The sync's context (``connection_id``, ``record_type``, ``xero_id``, ``sync_id``, ``task_id``...) lives
  in a contextvar: whoever knows it binds it (a task's start, a webhook's acceptance) and every line
  logged meanwhile carries it, including lines of code that never heard of it (HTTP clients, Celery).

Pure stdlib; no Flask or Celery here (workers/log_context.py wires Celery).
"""

from __future__ import annotations

import contextvars
import io
import logging
import math
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, TextIO

from connector.errors import ConfigError
from connector.json_codec import dumps_lenient

FORMATS = ("auto", "json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The fields that tie a line to one record's trip; text lines print these first.
SYNC_FIELDS = ("connection_id", "record_type", "xero_id", "zoho_id", "sync_id", "task_id", "task")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("connector_log_context", default={})

# Attributes every LogRecord has: anything else on a record came from ``extra=`` or the context.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime",
                                                                                      "taskName"}
_HANDLER_MARK = "_connector_handler"


def bind(**fields: Any) -> contextvars.Token:
    """Add fields (None values ignored) to the context of this thread/task; ``unbind(token)`` undoes it."""
    merged = {**_context.get(), **{key: value for key, value in fields.items() if value is not None}}
    return _context.set(merged)


def unbind(token: contextvars.Token) -> None:
    _context.set(token.old_value if token.old_value is not contextvars.Token.MISSING else {})


def clear() -> None:
    _context.set({})


def current() -> dict[str, Any]:
    return dict(_context.get())


@contextmanager
def bound(**fields: Any) -> Iterator[dict[str, Any]]:
    token = bind(**fields)
    try:
        yield current()
    finally:
        unbind(token)


def one_trip(ids, sync_ids: dict | None = None) -> dict[str, Any]:
    """``xero_id``/``sync_id`` when a batch is one record / one trip; nothing for a batch of many (each
    record's own lines carry its ids then)."""
    fields: dict[str, Any] = {}
    if len(set(ids)) == 1:
        fields["xero_id"] = str(next(iter(ids)))
    trips = {value for value in (sync_ids or {}).values() if value}
    if len(trips) == 1:
        fields["sync_id"] = trips.pop()
    return fields


def log_fields(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, msg, extra=fields)`` for a line logged per record: the same record (the
    caller's file, line and function included), so the same line, without Logger.log's walk up the
    stack (findCaller) to find that caller."""
    if not logger.isEnabledFor(level):
        return
    cls = type(logger)
    if (cls.findCaller is not _FIND_CALLER or cls._log is not _LOG or cls.makeRecord is not _MAKE_RECORD
            or not logging._srcfile):
        logger.log(level, msg, extra=fields, stacklevel=2)  # a logger class of its own: its own way
        return
    caller = sys._getframe(1)
    code = caller.f_code
    record = logger.makeRecord(logger.name, level, code.co_filename, caller.f_lineno, msg, (), None, code.co_name)
    attrs = record.__dict__
    if "message" in fields or "asctime" in fields or not attrs.keys().isdisjoint(fields):
        # makeRecord's own check, for its KeyError ("Attempt to overwrite ...")
        record = logger.makeRecord(logger.name, level, code.co_filename, caller.f_lineno, msg, (), None,
                                   code.co_name, fields)
    else:
        attrs.update(fields)  # makeRecord's extra= loop, checked at once above
    logger.handle(record)


_FIND_CALLER = logging.Logger.findCaller
_LOG = logging.Logger._log
_MAKE_RECORD = logging.Logger.makeRecord


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a record carries beyond the standard attributes: its ``extra=`` and the bound context."""
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRS}


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record; a field given in ``extra=`` wins over the context."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        # Straight into the record's __dict__ (what setattr on a LogRecord does): a worker runs this per line.
        attrs = record.__dict__
        for key, value in _context.get().items():
            if key not in attrs:
                attrs[key] = value
        if "service" not in attrs:
            attrs["service"] = self.process
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: the sync's fields first, then the rest, sorted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        fields.pop("service", None)
        ordered = [key for key in SYNC_FIELDS if key in fields] + sorted(k for k in fields if k not in SYNC_FIELDS)
        pairs = " ".join(f"{key}={_text(fields[key])}" for key in ordered)
        if not pairs:
            return line
        head, sep, trace = line.partition("\n")  # a traceback stays below the line, fields stay on it
        return f"{head} {pairs}{sep}{trace}"


def _text(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or any(c.isspace() for c in text)) else text


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then every field the record
    carries (``extra=`` and the bound context), then ``exc_info``/``stack_info`` when present.

    Written here rather than taken from python-json-logger, which spent more CPU in its own field
    handling than in the JSON encoding: the receiver writes a line per webhook and a worker one per
    audit stage. A value JSON cannot hold is written as its ``str`` (json_codec.dumps_lenient).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (second, its "%Y-%m-%d %H:%M:%S" text): one strftime per second, not per line.
        self._second_text: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second = math.floor(record.created)  # what localtime(created) reads, so the same text
        cached = self._second_text
        if cached[0] != second:
            cached = (second, time.strftime(self.default_time_format, time.localtime(second)))
            self._second_text = cached  # one tuple: another thread sees the old pair or the new one
        return self.default_msec_format % (cached[1], record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for key, value in record.__dict__.items():  # extra_fields, without the dict it would build
            if key not in _RECORD_ATTRS:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return dumps_lenient(line, ensure_ascii=False)


class LineStreamHandler(logging.StreamHandler):
    """A StreamHandler without the second flush after a line that a line-buffered file (stderr is one)
    flushed while writing it: each line still reaches the file descriptor before ``emit`` returns."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stream = self.stream
            stream.write(msg + self.terminator)
            # io.TextIOWrapper flushes itself when a line-buffered write holds a "\n" or "\r".
            if not (type(stream) is io.TextIOWrapper and stream.line_buffering
                    and ("\n" in self.terminator or "\r" in self.terminator)):
                self.flush()
        except RecursionError:  # as in StreamHandler.emit
            raise
        except Exception:
            self.handleError(record)


def json_formatter() -> logging.Formatter:
    return JsonLineFormatter()


def resolve_format(log_format: str, stream: TextIO) -> str:
    log_format = (log_format or "auto").lower()
    if log_format not in FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r}: use one of {', '.join(FORMATS)}")
    if log_format == "auto":
        return "text" if getattr(stream, "isatty", lambda: False)() else "json"
    return log_format


def resolve_level(level: str | int | None) -> int:
    if isinstance(level, int):
        return level
    name = (level or "INFO").upper()
    if name not in LEVELS:
        raise ConfigError(f"LOG_LEVEL={level!r}: use one of {', '.join(LEVELS)}")
    return getattr(logging, name)


def make_handler(process: str, *, log_format: str = "auto", stream: TextIO | None = None) -> logging.Handler:
    # The process's real stderr: Celery replaces sys.stderr with a proxy that logs (writing there would loop),
    # and a test's capture object is closed once the test ends.
    stream = stream or sys.__stderr__ or sys.stderr
    handler = LineStreamHandler(stream)
    handler.setFormatter(json_formatter() if resolve_format(log_format, stream) == "json" else TextFormatter())
    handler.addFilter(ContextFilter(process))
    setattr(handler, _HANDLER_MARK, True)
    return handler


def configured_format() -> str:
    from connector.settings import log_settings

    return log_settings()[1]


def setup(process: str, *, level: str | int | None = None, log_format: str | None = None,
          stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's lines through one handler on the root logger (replacing any earlier one).

    ``level``/``log_format`` default to the LOG_LEVEL/LOG_FORMAT settings; ``process`` ("web",
    "worker", "beat", "flower", "cli", "run") is stamped on each line as ``service``.
    """
    if level is None or log_format is None:
        from connector.settings import log_settings

        env_level, env_format = log_settings()
        level = (env_level or "INFO") if level is None else level
        log_format = env_format if log_format is None else log_format
    handler = make_handler(process, log_format=log_format, stream=stream)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False) or not _is_pytest(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(resolve_level(level))
    # One line per sandbox request and per loopback HTTP connection is noise, not operations; so are
    # alembic's plugin lines on import and its schema checks on each process's first database use
    # (`connector migrate` shows the upgrades it runs: show_migrations).
    for name in ("werkzeug", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def show_migrations() -> None:
    """Let alembic's "Running upgrade ..." lines through (for `connector migrate`)."""
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)


def _is_pytest(handler: logging.Handler) -> bool:
    # pytest's capture handlers stay, so tests still see what a process logged.
    return type(handler).__module__.startswith("_pytest")
