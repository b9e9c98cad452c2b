"""Xero Accounting API client: one method per endpoint, one error table.

Xero's pages: https://developer.xero.com/documentation/api/requests-and-responses (headers, paging, envelope)
and https://developer.xero.com/documentation/api/http-response-codes (errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import requests

from connector.call_purpose import ResponseSeen, xero_response_seen
from connector.errors import (
    ApiError,
    DataError,
    NeedsReauth,
    NotFound,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connector.http import (
    DEFAULT_TIMEOUT,
    body_excerpt,
    is_json,
    transport_error,
    transport_retry,
)
from connector.json_codec import dumps_for_api, loads_from_api
from connector.redaction import redact_text
from connector.ratelimit import Denial, Limits

if TYPE_CHECKING:
    from connector.ratelimit import XeroRateGovernor
    from connector.xero.auth import XeroTokenSource

log = logging.getLogger(__name__)

# The gateway answers a misleading 404 once a URL holds ~53 GUIDs
# (https://github.com/XeroAPI/Xero-OpenAPI/issues/534).
MAX_IDS_PER_CALL = 50
# CreditNotes has no IDs parameter (OAS-ACC getCreditNotes), so ids go in a `where` OR-chain,
# which is longer per id; keep the URL well under the ~2,000-character gateway limit.
MAX_WHERE_IDS_PER_CALL = 20
# Xero promises Retry-After only for minute/day 429s (https://developer.xero.com/documentation/oauth2/limits);
# a concurrency 429 clears fast.
DEFAULT_RETRY_AFTER = {"concurrent": 1.0}
FALLBACK_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Page:
    items: list[dict]
    page: int
    page_size: int
    page_count: int | None
    item_count: int | None

    @property
    def has_more(self) -> bool:
        if self.page_count is not None:
            return self.page < self.page_count
        return len(self.items) >= self.page_size  # no pagination block: a short page is the last


def format_modified_since(moment: datetime) -> str:
    """If-Modified-Since as ISO-8601 UTC without fraction (filtering is to the second); naive = UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def raise_for_xero(response: requests.Response, *, tenant_id: str | None = None, secrets: Sequence[str] = ()) -> None:
    """Turn a non-2xx Xero answer into the typed error that says what to do next (response codes page above)."""
    status = response.status_code
    if status < 400:
        return
    body: Any = None
    if is_json(response):  # 404 and some 400/503 bodies are plain text
        try:
            body = loads_from_api(response.content)
        except ValueError:
            body = None
    detail = _detail(body) if isinstance(body, dict) else body_excerpt(response)
    correlation = response.headers.get("Xero-Correlation-Id")
    where = f"Xero {response.request.method} {_path(response)}" if response.request is not None else "Xero"
    message = redact_text(f"{where}: {status} {detail}" + (f" (correlation {correlation})" if correlation else ""), *secrets)
    if status == 400:
        if isinstance(body, dict) and body.get("Type") == "ValidationException":
            raise DataError(redact_text(f"{where}: {_first_validation_message(body) or detail}", *secrets))
        raise ApiError(message, status=status)
    if status == 401:
        raise Unauthorized(message)
    if status == 403:
        if "AuthenticationUnsuccessful" in str(detail):
            tenant = f"tenant {tenant_id}" if tenant_id else "the tenant"
            raise NeedsReauth(
                f"{where}: 403 AuthenticationUnsuccessful: {tenant} is no longer connected to this app; reconnect it",
                system="xero",
            )
        raise ApiError(message, status=status)
    if status == 404:
        raise NotFound(message)
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem")
        raise RateLimited(message, retry_after=retry_after_seconds(response.headers), problem=problem)
    if status >= 500:
        raise TransientError(message)
    raise ApiError(message, status=status)


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    try:
        return max(float(headers["Retry-After"]), 0.0)
    except (KeyError, ValueError):
        problem = (headers.get("X-Rate-Limit-Problem") or "").lower()
        return DEFAULT_RETRY_AFTER.get(problem, FALLBACK_RETRY_AFTER)


def _detail(body: dict) -> str:
    return str(body.get("Detail") or body.get("Message") or body.get("Title") or body)[:300]


def _first_validation_message(body: dict) -> str | None:
    for element in body.get("Elements") or []:
        for error in element.get("ValidationErrors") or []:
            if error.get("Message"):
                return str(error["Message"])
    return None


def _path(response: requests.Response) -> str:
    """The request path without host or query (query strings can be long and say nothing useful)."""
    return urlsplit(response.request.url or "").path


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


class XeroClient:
    """One tenant's view of the Accounting API; every call goes through the shared rate governor."""

    def __init__(
        self,
        *,
        session: requests.Session,
        tokens: "XeroTokenSource",
        tenant_id: str,
        api_url: str,
        governor: "XeroRateGovernor | None" = None,
        limits: Limits = Limits(),
        priority: int = 0,
        dry_run: bool = False,
        connection_id: int | None = None,
        on_response: "Callable[[ResponseSeen], None] | None" = None,
    ) -> None:
        self._session = session
        self._connection_id = connection_id
        self._on_response = on_response  # the day-budget ledger (TEMPORARY until the shared HTTP pipeline)
        self._tokens = tokens
        self.tenant_id = tenant_id
        self._api_url = api_url.rstrip("/")
        self._accounting = self._api_url + "/api.xro/2.0"
        self._governor = governor
        self._limits = limits
        self._priority = priority
        self._dry_run = dry_run  # its calls are counted apart by the governor (a backfill's --dry-run)

    def __repr__(self) -> str:
        return f"XeroClient(tenant_id={self.tenant_id!r}, api_url={self._api_url!r})"

    # -- identity -------------------------------------------------------------------------------

    def get_connections(self) -> list[dict]:
        """Tenants this token can reach (GET /connections); no tenant header, not counted against a tenant."""
        return self._call("GET", self._api_url + "/connections", tenant=False)

    # -- contacts -------------------------------------------------------------------------------

    def get_contacts(self, ids: Sequence[str]) -> list[dict]:
        return self._get_by_ids("/Contacts", "Contacts", ids, includeArchived="true")

    def get_contact(self, contact_id: str) -> dict:
        return self._get_one(f"/Contacts/{contact_id}", "Contacts")

    def list_contacts(
        self,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int = 100,
        include_archived: bool = True,
        order: str = "UpdatedDateUTC ASC",
    ) -> Page:
        params = {"includeArchived": _bool(include_archived)}
        return self._list("/Contacts", "Contacts", modified_since, page, page_size, order, params)

    def update_contact(self, contact: dict, *, idempotency_key: str) -> dict:
        """POST /Contacts/{ContactID}: omitted elements keep their values."""
        contact_id = contact.get("ContactID")
        if not contact_id:
            raise DataError("update_contact needs the ContactID", field="ContactID")
        body = self._call("POST", self._accounting + f"/Contacts/{contact_id}", json_body={"Contacts": [contact]},
                          idempotency_key=idempotency_key)
        return body["Contacts"][0]

    def create_contacts(self, contacts: Sequence[dict], *, idempotency_key: str) -> list[dict]:
        """PUT /Contacts (create only); Xero advises batches of about 50 (its limits page)."""
        body = self._call("PUT", self._accounting + "/Contacts", json_body={"Contacts": list(contacts)},
                          idempotency_key=idempotency_key)
        return body["Contacts"]

    # -- invoices -------------------------------------------------------------------------------

    def get_invoices(self, ids: Sequence[str]) -> list[dict]:
        return self._get_by_ids("/Invoices", "Invoices", ids, includeArchived="true")

    def get_invoice(self, invoice_id: str) -> dict:
        return self._get_one(f"/Invoices/{invoice_id}", "Invoices")

    def list_invoices(
        self,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int = 100,
        include_archived: bool = True,
        order: str = "UpdatedDateUTC ASC",
        statuses: Sequence[str] | None = None,
        where: str | None = None,
    ) -> Page:
        params = {"includeArchived": _bool(include_archived)}
        if statuses:
            params["Statuses"] = ",".join(statuses)
        if where:
            params["where"] = where
        return self._list("/Invoices", "Invoices", modified_since, page, page_size, order, params)

    # -- payments (no IDs parameter and no webhooks: poll with If-Modified-Since) -----------------

    def list_payments(
        self,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int = 100,
        order: str = "UpdatedDateUTC ASC",
    ) -> Page:
        return self._list("/Payments", "Payments", modified_since, page, page_size, order, {})

    def get_payment(self, payment_id: str) -> dict:
        return self._get_one(f"/Payments/{payment_id}", "Payments")

    # -- credit notes ---------------------------------------------------------------------------

    def get_credit_notes(self, ids: Sequence[str]) -> list[dict]:
        found: list[dict] = []
        for chunk in _chunks(ids, MAX_WHERE_IDS_PER_CALL):
            where = " OR ".join(f'CreditNoteID==Guid("{credit_note_id}")' for credit_note_id in chunk)
            body = self._call("GET", self._accounting + "/CreditNotes", params={"where": where, "page": 1})
            found.extend(body.get("CreditNotes") or [])
        return found

    def list_credit_notes(
        self,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int = 100,
        order: str = "UpdatedDateUTC ASC",
    ) -> Page:
        return self._list("/CreditNotes", "CreditNotes", modified_since, page, page_size, order, {})

    # -- plumbing -------------------------------------------------------------------------------

    def _get_by_ids(self, path: str, key: str, ids: Sequence[str], **params: str) -> list[dict]:
        found: list[dict] = []
        for chunk in _chunks(ids, MAX_IDS_PER_CALL):
            # `page` makes Xero return full records (line items included).
            body = self._call("GET", self._accounting + path, params={"IDs": ",".join(chunk), "page": 1, **params})
            found.extend(body.get(key) or [])
        return found

    def _get_one(self, path: str, key: str) -> dict:
        items = self._call("GET", self._accounting + path).get(key) or []
        if not items:
            raise NotFound(f"Xero GET {path}: no {key} in the answer")
        return items[0]

    def _list(
        self,
        path: str,
        key: str,
        modified_since: datetime | None,
        page: int,
        page_size: int,
        order: str,
        params: dict[str, Any],
    ) -> Page:
        query = {"page": page, "pageSize": page_size, "order": order, **params}
        headers = {"If-Modified-Since": format_modified_since(modified_since)} if modified_since else {}
        body = self._call("GET", self._accounting + path, params=query, headers=headers)
        items = body.get(key) or []
        pagination = body.get("pagination") or {}
        return Page(
            items=items,
            page=int(pagination.get("page", page)),
            page_size=int(pagination.get("pageSize", page_size)),
            page_count=_int_or_none(pagination.get("pageCount")),
            item_count=_int_or_none(pagination.get("itemCount")),
        )

    def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotency_key: str | None = None,
        tenant: bool = True,
    ) -> Any:
        """Send one request; on a 401 refresh the token once and try once more."""
        extra = dict(headers or {})
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key  # a retried write is not applied twice
        token = self._tokens.access_token()
        for attempt in (1, 2):
            response = self._send(method, url, token, params, extra, json_body, tenant)
            if response.status_code != 401:
                break
            if attempt == 2:
                raise NeedsReauth(f"Xero {method} {_path(response)}: 401 again after refreshing the token; reconnect",
                                  system="xero")
            log.info("Xero answered 401 for tenant %s; refreshing the token once", self.tenant_id)
            token = self._tokens.refresh(force=True)
        raise_for_xero(response, tenant_id=self.tenant_id, secrets=(token,))
        return loads_from_api(response.content) if response.content else {}

    def _send(
        self,
        method: str,
        url: str,
        token: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        json_body: Any,
        tenant: bool,
    ) -> requests.Response:
        request_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **headers}
        if tenant:
            request_headers["xero-tenant-id"] = self.tenant_id
        data = None
        if json_body is not None:
            request_headers["Content-Type"] = "application/json"
            data = dumps_for_api(json_body).encode()
        permit = self._acquire() if tenant else None
        response_headers: Mapping[str, str] | None = None
        try:
            response = transport_retry(self._session.request)(
                method, url, params=params, headers=request_headers, data=data, timeout=DEFAULT_TIMEOUT
            )
            response_headers = response.headers
            if self._on_response is not None:  # TEMPORARY: the shared HTTP pipeline's listeners take this over
                self._on_response(xero_response_seen(self._connection_id, method, url, response))
        except requests.RequestException as exc:
            raise transport_error(exc, f"Xero {method} {urlsplit(url).path}", token) from None
        finally:
            if permit is not None:
                self._governor.release(permit, response_headers)  # reads X-*Limit-Remaining
        if response.status_code == 429 and self._governor is not None:
            self._governor.observe_429(
                self.tenant_id,
                retry_after=retry_after_seconds(response.headers),
                problem=response.headers.get("X-Rate-Limit-Problem"),
            )
        return response

    def _acquire(self):
        if self._governor is None:
            return None
        outcome = self._governor.try_acquire(self.tenant_id, self._limits, priority=self._priority,
                                             dry_run=self._dry_run)
        if isinstance(outcome, Denial):
            raise RateLimited(
                f"Xero rate governor: {outcome.reason} limit for tenant {self.tenant_id}",
                retry_after=outcome.retry_after,
                problem=outcome.reason,
            )
        return outcome


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
