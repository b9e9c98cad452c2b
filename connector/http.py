"""HTTP plumbing shared by the Xero and Zoho clients and their token managers.

- one pooled ``requests.Session`` per process, without urllib3-level retries (we decide what to retry);
- ``transport_retry``: a few quick retries on broken connections and timeouts only; the Celery layer
  does the slow, backed-off retries;
- ``StoredTokenManager``: the refresh logic both OAuth providers share (stored token set, Redis
  single-flight lock, re-read after the lock, compare-and-swap save).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

import requests
from redis.exceptions import LockError
from requests.adapters import HTTPAdapter
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from connector import __version__
from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import NeedsReauth, TransientError
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


def transport_error(exc: requests.RequestException, what: str, *secrets: str) -> TransientError:
    return TransientError(redact_text(f"{what}: {type(exc).__name__}: {exc}", *secrets))


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

    def _request_refresh(self, tokens: TokenSet) -> TokenSet:
        raise NotImplementedError
