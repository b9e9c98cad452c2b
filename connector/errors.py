"""Typed errors shared by the clients, the pipeline and the tasks.

Each error says what the caller should do with it: retry soon (TransientError), wait for a
limit (RateLimited), stop and ask a person (NeedsReauth), or give up on this record
(DataError / RecordRejected) with the reason in the audit trail. Messages never carry secrets.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConnectorError(Exception):
    """Base class for every error the connector raises on purpose."""

    def __reduce__(self):
        # Keyword-only attributes (status, code, retry_after...) survive pickling, so a task's failure
        # reaches Celery's log as the error it is, not as a bare ConnectorError.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type, args: tuple, state: dict) -> "ConnectorError":
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(ConnectorError):
    """The configuration is missing or wrong; the message says what to set."""


class InvalidArgument(ConnectorError):
    """An operator's request (CLI or task arguments) is wrong; the message says what is accepted."""


class TransientError(ConnectorError):
    """A failure worth retrying with backoff (timeouts, 5xx, broken connections)."""


class RateLimited(TransientError):
    """The API (or our own governor) says: not now. ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float, problem: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = float(retry_after)
        self.problem = problem


class Unauthorized(ConnectorError):
    """An access token was refused; refreshing it once may help."""


class NeedsReauth(ConnectorError):
    """The grant is gone (invalid_grant, revoked consent): a person must reconnect ``system`` ("xero",
    "zoho"; None when unknown)."""

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.system = system


def reconnect_command(system: str, connection_ids: Sequence[int] = ()) -> str:
    """The command that gives ``system`` a new consent: one Xero consent links every tenant ticked;
    one Zoho consent serves every connection that shares the org (hence all of them at once)."""
    if system == "zoho":
        return " ".join(["connector connect zoho", *(f"--connection {i}" for i in connection_ids or ["ID"])])
    return "connector connect xero"


class NotFound(ConnectorError):
    """The record does not exist (or no longer exists) on the remote side."""


class DataError(ConnectorError):
    """A record cannot be mapped or written as it is; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationRefused(DataError):
    """Xero refused a write with a 400 ValidationException (a name already used by another active contact,
    an archived contact, ...): the record as sent can never pass, so it is never retried; ``messages`` are
    all of Xero's validation messages, the first one in the text."""

    def __init__(self, message: str, *, messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.messages = tuple(messages)


class RecordRejected(ConnectorError):
    """The remote API refused one record (e.g. a Zoho per-record error in a 207)."""

    def __init__(self, message: str, *, code: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class ApiError(ConnectorError):
    """An unexpected HTTP answer that fits none of the above; not retried."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ZohoNotConnected(ConnectorError):
    """No Zoho grant was ever stored for the connection: not a lost grant (NeedsReauth) but a step of the
    first deployment still to take. Zoho-bound work waits for it; the Xero side runs on."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"Zoho is not connected yet for connection {connection_id}: run "
                         f"`{reconnect_command('zoho', [connection_id])}` (or follow README's First deployment)")
        self.connection_id = connection_id


def is_transient(exc: BaseException) -> bool:
    """Worth retrying with backoff: our TransientError, and any failure to reach the database, Redis or the
    broker (they come back after a restart or a failover; work must wait for them, never be dropped)."""
    if isinstance(exc, TransientError):
        return True
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    infrastructure = (
        sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError,
        sqlalchemy.exc.TimeoutError,  # the connection pool ran dry
        redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
        kombu.exceptions.OperationalError,  # the broker refused or lost the connection
        ConnectionError, TimeoutError,  # ConnectionRefusedError and friends from a raw socket
    )
    return isinstance(exc, infrastructure)


def is_infrastructure_failure(exc: BaseException) -> bool:
    """A transient failure of our own services (database, Redis, broker) rather than of Xero or Zoho."""
    return is_transient(exc) and not isinstance(exc, TransientError)
