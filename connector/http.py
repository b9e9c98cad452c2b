"""HTTP plumbing shared by the Xero and Zoho clients and their token managers: one request pipeline.

``RequestPipeline.send`` is the one way a request leaves the connector. It owns, for both vendors:
- sending on one pooled ``requests.Session`` per process, without urllib3-level retries;
- a few quick transport retries on broken connections and timeouts (``transport_retry``, built once);
  the Celery layer does the slow, backed-off retries;
- injecting the access token from a token manager, and on a refused token: one single-flight refresh
  (``StoredTokenManager``, below) and one retry;
- turning an answer into the typed error of ``connector.errors`` through one ladder
  (``raise_for_answer``) whose vendor differences live in a ``VendorHooks`` subclass
  (``xero/hooks.py``, ``zoho/hooks.py``: APIs and token endpoints alike);
- redacting secrets from every error it raises;
- telling listeners (``add_response_listener``) about every HTTP response, as a ``ResponseSeen``
  tagged with the caller's ``call_purpose``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import requests
from redis.exceptions import LockError
from requests.adapters import HTTPAdapter
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from connector import __version__
from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import ApiError, ConnectorError, NeedsReauth, RateLimited, TransientError
from connector.json_codec import dumps_for_api, loads_from_api
from connector.redaction import redact_text
from connector.secret import Secret
from connector.store.credentials import CredentialStore, StaleCredentials, StoredTokens, TokenSet

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5, 30)  # (connect, read) seconds

# A few quick attempts for blips (reset connections, a slow read); anything longer is the task's job.
TRANSPORT_ATTEMPTS = 3
transport_retry = retry(
    retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout)),
    stop=stop_after_attempt(TRANSPORT_ATTEMPTS),
    wait=wait_random(0.05, 0.3),
    reraise=True,
)


@transport_retry
def _send_with_retries(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    return session.request(method, url, **kwargs)


def worst_case_call_seconds(timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> float:
    """The longest one call through ``transport_retry`` can take: every attempt connecting and reading
    up to its timeouts, plus the waits between them."""
    return TRANSPORT_ATTEMPTS * (timeout[0] + timeout[1]) + TRANSPORT_ATTEMPTS * 0.3


def make_session(user_agent: str = f"ml-connector/{__version__}") -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=10, pool_maxsize=20, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def body_excerpt(response: requests.Response, limit: int = 300) -> str:
    text = response.text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "").lower()


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body when the answer says it is JSON, else None (404s and some 5xx are plain text)."""
    if not response.content or not is_json(response):
        return None
    try:
        return loads_from_api(response.content)
    except ValueError:
        return None


def transport_error(exc: requests.RequestException, what: str, *secrets: str) -> TransientError:
    return TransientError(redact_text(f"{what}: {type(exc).__name__}: {exc}", *secrets))


# -- what each response tells the rest of the connector ------------------------------------------------

# The rate-limit headers worth keeping (https://developer.xero.com/documentation/guides/oauth2/limits/).
LIMIT_HEADERS = ("X-DayLimit-Remaining", "X-MinLimit-Remaining", "X-AppMinLimit-Remaining", "X-Rate-Limit-Problem",
                 "Retry-After")
# Why a call is made; callers say so with `with call_purpose("catch_up"):`. Documentation, not enforced.
PURPOSES = ("unspecified", "webhook_fetch", "catch_up", "payments", "backfill", "write_back", "check")


@dataclass(frozen=True)
class ResponseSeen:
    """One HTTP response, as listeners see it (no ids, no bodies, no secrets)."""

    vendor: str  # "xero" | "zoho"
    connection_id: int | None  # None for calls made before a connection exists (the connect flow)
    method: str
    endpoint: str  # the path with ids replaced by {id}, e.g. /api.xro/2.0/Contacts/{id}
    status: int
    bytes_received: int  # length of the (decoded) body
    purpose: str  # call_purpose when the request was sent
    limit_headers: Mapping[str, str] = field(default_factory=dict)  # those of LIMIT_HEADERS present


class _CallPurpose:
    """A context variable with a context manager: ``with call_purpose("backfill"): ...`` tags every
    response seen inside (threads and tasks keep their own); ``call_purpose.get()`` reads it."""

    def __init__(self) -> None:
        self._var: ContextVar[str] = ContextVar("call_purpose", default="unspecified")

    def get(self) -> str:
        return self._var.get()

    def set(self, purpose: str) -> Token[str]:
        """As ``ContextVar.set``, for code that cannot use a ``with`` block; undo with ``reset``."""
        return self._var.set(purpose)

    def reset(self, token: Token[str]) -> None:
        self._var.reset(token)

    @contextmanager
    def __call__(self, purpose: str) -> Iterator[str]:
        token = self._var.set(purpose)
        try:
            yield purpose
        finally:
            self._var.reset(token)


call_purpose = _CallPurpose()

_listeners: list[Callable[[ResponseSeen], None]] = []


def add_response_listener(fn: Callable[[ResponseSeen], None]) -> Callable[[ResponseSeen], None]:
    """Call ``fn`` once per HTTP response of this process (usable as a decorator). A listener that raises
    is logged and never breaks the request."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


def remove_response_listener(fn: Callable[[ResponseSeen], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|\d+)$")


def endpoint_template(url: str) -> str:
    """The URL's path with GUID and numeric segments (Xero and Zoho record ids) replaced by {id}."""
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in urlsplit(url).path.split("/"))


def _tell_listeners(vendor: str, connection_id: int | None, method: str, url: str,
                    response: requests.Response) -> None:
    headers = response.headers
    seen = ResponseSeen(
        vendor=vendor, connection_id=connection_id, method=method, endpoint=endpoint_template(url),
        status=response.status_code, bytes_received=len(response.content), purpose=call_purpose.get(),
        limit_headers={name: headers[name] for name in LIMIT_HEADERS if name in headers},
    )
    for listener in list(_listeners):
        try:
            listener(seen)
        except Exception:  # an observer's failure is its own; the request goes on
            log.exception("response listener %r failed", listener)


# -- the ladder: an answer to a typed error -------------------------------------------------------------


class VendorHooks:
    """What differs between vendors (and between an API and its token endpoint). The defaults suit a
    plain REST API; subclasses override what their vendor's documentation says differently."""

    vendor: ClassVar[str]
    # Statuses with an error type of their own, after ``specific_error`` and the 429/5xx rules.
    status_errors: ClassVar[Mapping[int, type[ConnectorError]]] = {}

    # request side
    def url(self, target: str) -> str:
        """The URL to send to, resolved after the access token is in hand (a refresh may tell where)."""
        return target

    def prepare_headers(self, headers: dict[str, str], token: str | None, scoped: bool) -> None:
        """Add the access token (when there is one) and the vendor's fixed headers."""

    def admit(self, scoped: bool) -> Any:
        """Called before each send; may raise (our own rate limits) or return a permit for ``settle``."""
        return None

    def settle(self, permit: Any, response: requests.Response | None) -> None:
        """Called after each send, answered or not."""

    def token_refused(self, response: requests.Response) -> bool:
        """Whether a fresh access token may help (then the pipeline refreshes once and retries once)."""
        return response.status_code == 401

    def describe_transport(self, method: str, url: str) -> str:
        return f"{self.vendor.capitalize()} {method} {urlsplit(url).path}"

    # answer side
    def parse(self, response: requests.Response) -> Any:
        return json_body(response)

    def accepts(self, response: requests.Response, body: Any) -> bool:
        return response.status_code < 400

    def describe(self, response: requests.Response, body: Any) -> str:
        """The error message (secrets are removed afterwards)."""
        request = response.request
        path = urlsplit(request.url or "").path if request is not None else ""
        return f"{self.vendor.capitalize()} {request.method if request else ''} {path}: {response.status_code}"

    def specific_error(self, response: requests.Response, body: Any, message: str,
                       secrets: tuple[str, ...]) -> ConnectorError | None:
        """The vendor's own error codes, checked before the status ladder."""
        return None

    def retry_after(self, response: requests.Response, body: Any) -> float:
        return 60.0

    def rate_problem(self, response: requests.Response, body: Any) -> str | None:
        return None


def raise_for_answer(response: requests.Response, hooks: VendorHooks, *, secrets: tuple[str, ...] = (),
                     accept: Callable[[requests.Response, Any], bool] | None = None) -> Any:
    """The parsed body of an answer ``hooks`` accept; otherwise the typed error that says what to do next:
    the vendor's own codes first, then 429 wait, 5xx retry, the vendor's status table, else ApiError."""
    body = hooks.parse(response)
    if hooks.accepts(response, body) or (accept is not None and accept(response, body)):
        return body
    status = response.status_code
    message = redact_text(hooks.describe(response, body), *secrets)
    error = hooks.specific_error(response, body, message, secrets)
    if error is None:
        if status == 429:
            error = RateLimited(message, retry_after=hooks.retry_after(response, body),
                                problem=hooks.rate_problem(response, body))
        elif status >= 500:
            error = TransientError(message)
        elif status in hooks.status_errors:
            error = hooks.status_errors[status](message)
        else:
            error = ApiError(message, status=status)
    raise error


# -- the pipeline -------------------------------------------------------------------------------------------


class TokenSource(Protocol):
    def access_token(self) -> str: ...

    def refresh(self, force: bool = False) -> str: ...


class RequestPipeline:
    """Sends one vendor's requests: auth, transport retries, one refresh on a refused token, the error
    ladder, redaction, and a ``ResponseSeen`` per response. Without ``tokens`` it adds no auth."""

    def __init__(self, session: requests.Session, hooks: VendorHooks, *, tokens: TokenSource | None = None,
                 connection_id: int | None = None) -> None:
        self._session = session
        self._hooks = hooks
        self._tokens = tokens
        self.connection_id = connection_id if connection_id is not None else getattr(tokens, "connection_id", None)

    def send(
        self,
        method: str,
        target: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        auth: Any = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry_transport: bool = True,
        scoped: bool = True,
        accept: Callable[[requests.Response, Any], bool] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> tuple[requests.Response, Any]:
        """The answer and its parsed body, or the typed error (see ``raise_for_answer``).

        ``target``: the URL, or what the vendor's ``hooks.url`` turns into one (Zoho: a path on the
        account's data centre);
        ``scoped``: the call belongs to the vendor's tenant (Xero: tenant header and rate governor);
        ``retry_transport=False`` for writes a replay would apply twice; ``accept`` admits an answer the
        ladder would refuse (Zoho's 400 with per-record results)."""
        if json is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
            data = dumps_for_api(json).encode()
        token = self._tokens.access_token() if self._tokens is not None else None
        for attempt in (1, 2):
            url = self._hooks.url(target)
            response = self._send_once(method, url, token, params, headers, data, auth, timeout, retry_transport,
                                       scoped, secrets)
            if token is None or not self._hooks.token_refused(response):
                break
            what = self._hooks.describe_transport(method, url)
            if attempt == 2:
                raise NeedsReauth(f"{what}: {response.status_code} again after refreshing the token; reconnect",
                                  system=self._hooks.vendor)
            log.info("%s: the access token was refused for connection %s; refreshing it once", what,
                     self.connection_id)
            token = self._tokens.refresh(force=True)
        hidden = (*secrets, token) if token else secrets
        return response, raise_for_answer(response, self._hooks, secrets=hidden, accept=accept)

    def _send_once(self, method: str, url: str, token: str | None, params: Mapping[str, Any] | None,
                   headers: Mapping[str, str] | None, data: Any, auth: Any, timeout: tuple[float, float],
                   retry_transport: bool, scoped: bool, secrets: tuple[str, ...]) -> requests.Response:
        request_headers: dict[str, str] = {}
        self._hooks.prepare_headers(request_headers, token, scoped)
        if headers:
            request_headers.update(headers)
        hooks = self._hooks
        permit = hooks.admit(scoped)
        response: requests.Response | None = None
        try:
            if retry_transport:
                response = _send_with_retries(self._session, method, url, params=params, headers=request_headers,
                                              data=data, auth=auth, timeout=timeout)
            else:
                response = self._session.request(method, url, params=params, headers=request_headers, data=data,
                                                 auth=auth, timeout=timeout)
        except requests.RequestException as exc:
            hidden = (*secrets, token) if token else secrets
            raise transport_error(exc, hooks.describe_transport(method, url), *hidden) from None
        finally:
            hooks.settle(permit, response)
        if _listeners:
            _tell_listeners(hooks.vendor, self.connection_id, method, url, response)
        return response


class StoredTokenManager:
    """Keeps one stored token set per (connection, system) fresh, refreshing at most once at a time.

    Every worker shares the stored access token (Zoho allows 10 refreshes per 10 minutes; Xero rotates
    the refresh token, so two independent refreshes would race). A refresh takes a Redis lock keyed by
    connection, re-reads the store, and skips the call when someone else already refreshed.
    """

    system: ClassVar[str]

    def __init__(
        self,
        *,
        connection_id: int,
        credentials: CredentialStore,
        redis: Any,
        session: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        clock: Clock | None = None,
        refresh_margin: float = 300.0,
        lock_timeout: float | None = None,
        lock_wait: float = 30.0,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.connection_id = connection_id
        self._credentials = credentials
        self._redis = redis
        self._session = session
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock or SYSTEM_CLOCK
        self._refresh_margin = timedelta(seconds=refresh_margin)
        # The lock must outlive the refresh it guards, however slow (else a second refresh could race it
        # and spend the rotated refresh token): the worst case of the call, its load and save, and a margin.
        self._lock_timeout = lock_timeout if lock_timeout is not None else worst_case_call_seconds(timeout) + 15.0
        self._lock_wait = lock_wait  # how long a caller waits for someone else's refresh before retrying later
        self._timeout = timeout  # (connect, read) seconds
        self._last: StoredTokens | None = None  # the stored tokens as last read
        self._pipeline = RequestPipeline(session, self._token_hooks(), connection_id=connection_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connection_id={self.connection_id})"

    def access_token(self) -> str:
        # One read per manager (a task's clients) while the token is good: a 401 forces a refresh,
        # which reads the store again, so a token another process replaced is never used twice.
        stored = self._last if self._last is not None else self._load()
        if self._expiring(stored.tokens):
            return self._refresh(seen=stored, force=False)
        return stored.tokens.access_token.reveal()

    def refresh(self, force: bool = False) -> str:
        # Against the tokens we used: when another process has stored newer ones since, they are taken
        # instead of refreshing again.
        return self._refresh(seen=self._last if self._last is not None else self._load(), force=force)

    def _refresh(self, *, seen: StoredTokens, force: bool) -> str:
        lock = self._redis.lock(
            f"connector:oauth-refresh:{self.system}:{self.connection_id}",
            timeout=self._lock_timeout,
            blocking_timeout=self._lock_wait,
        )
        if not lock.acquire():
            raise TransientError(f"timed out waiting for the {self.system} token refresh lock")
        try:
            current = self._load()
            refreshed_meanwhile = current.version != seen.version
            if refreshed_meanwhile or not (force or self._expiring(current.tokens)):
                return current.tokens.access_token.reveal()
            fresh = self._request_refresh(current.tokens)
            try:  # persist (rotated refresh token included) before anyone uses the new access token
                self._credentials.save(self.connection_id, self.system, fresh, expected_version=current.version)
                self._last = None  # the next use reads what was just saved
            except StaleCredentials:  # our lock lapsed and another process saved first: theirs wins
                log.warning("%s tokens for connection %s changed during refresh", self.system, self.connection_id)
                return self._load().tokens.access_token.reveal()
            log.info("refreshed %s access token for connection %s", self.system, self.connection_id)
            return fresh.access_token.reveal()
        finally:
            try:
                lock.release()
            except LockError:  # the lock expired under us; the CAS save already guarded the write
                log.warning("%s refresh lock for connection %s had expired", self.system, self.connection_id)

    def _load(self) -> StoredTokens:
        stored = self._credentials.load(self.connection_id, self.system)
        if stored is None:
            self._last = None
            raise NeedsReauth(f"no {self.system} tokens stored for connection {self.connection_id}: connect it first",
                              system=self.system)
        self._last = stored
        return stored

    def _expiring(self, tokens: TokenSet) -> bool:
        return tokens.expires_at - self._clock.now() <= self._refresh_margin

    def _expires_at(self, expires_in: Any) -> datetime:
        return self._clock.now() + timedelta(seconds=float(expires_in))

    def _post_token(self, form: dict[str, str], *secrets: str) -> dict:
        """POST to the token endpoint through the pipeline (its hooks read the vendor's token errors)."""
        hidden = (*secrets, self._client_secret.reveal())
        form, auth = self._with_client_credentials(form)
        _, body = self._pipeline.send("POST", self._token_url, data=form, auth=auth, timeout=self._timeout,
                                      scoped=False, secrets=hidden)
        return body

    def _with_client_credentials(self, form: dict[str, str]) -> tuple[dict[str, str], Any]:
        """The form and the requests ``auth`` that authenticate this app to the token endpoint."""
        raise NotImplementedError

    def _token_hooks(self) -> VendorHooks:
        raise NotImplementedError

    def _request_refresh(self, tokens: TokenSet) -> TokenSet:
        raise NotImplementedError
