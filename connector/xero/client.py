"""Xero Accounting API client: one method per kind of call, one error table, one table of the listed endpoints.

Xero's pages: https://developer.xero.com/documentation/api/requests-and-responses (headers, paging, envelope)
and https://developer.xero.com/documentation/api/http-response-codes (errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import requests

from connector.errors import DataError, NotFound
from connector.http import RequestPipeline
from connector.json_codec import loads_from_api
from connector.ratelimit import Limits
from connector.xero.hooks import XeroApiHooks

if TYPE_CHECKING:
    from connector.ratelimit import XeroRateGovernor
    from connector.xero.auth import XeroTokenSource

# The gateway answers a misleading 404 once a URL holds ~53 GUIDs
# (https://github.com/XeroAPI/Xero-OpenAPI/issues/534).
MAX_IDS_PER_CALL = 50
# CreditNotes has no IDs parameter (OAS-ACC getCreditNotes), so ids go in a `where` OR-chain,
# which is longer per id; keep the URL well under the ~2,000-character gateway limit.
MAX_WHERE_IDS_PER_CALL = 20


@dataclass(frozen=True)
class Endpoint:
    """A listed resource's endpoint: its path, the envelope key of its records, whether it takes includeArchived."""

    path: str
    key: str
    archivable: bool = False


# The polled resources. Payments, overpayments and prepayments have no IDs parameter and no webhooks: they are
# polled with If-Modified-Since (https://developer.xero.com/documentation/api/accounting/payments,
# https://developer.xero.com/documentation/api/accounting/overpayments,
# https://developer.xero.com/documentation/api/accounting/prepayments).
ENDPOINTS = {
    "contacts": Endpoint("/Contacts", "Contacts", archivable=True),
    "invoices": Endpoint("/Invoices", "Invoices", archivable=True),
    "creditnotes": Endpoint("/CreditNotes", "CreditNotes"),
    "payments": Endpoint("/Payments", "Payments"),
    "overpayments": Endpoint("/Overpayments", "Overpayments"),
    "prepayments": Endpoint("/Prepayments", "Prepayments"),
}


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
    ) -> None:
        self.tenant_id = tenant_id
        self._api_url = api_url.rstrip("/")
        self._accounting = self._api_url + "/api.xro/2.0"
        hooks = XeroApiHooks(tenant_id, governor=governor, limits=limits, priority=priority, dry_run=dry_run)
        self._pipeline = RequestPipeline(session, hooks, tokens=tokens)

    def __repr__(self) -> str:
        return f"XeroClient(tenant_id={self.tenant_id!r}, api_url={self._api_url!r})"

    # -- identity -------------------------------------------------------------------------------

    def get_connections(self) -> list[dict]:
        """Tenants this token can reach (GET /connections); no tenant header, not counted against a tenant."""
        return self._call("GET", self._api_url + "/connections", tenant=False)

    def get_organisation(self) -> dict:
        """The tenant's settings (GET /Organisation: Name, BaseCurrency, CountryCode, Class = the plan, Edition,
        ...; https://developer.xero.com/documentation/api/accounting/organisation). Needs accounting.settings or
        accounting.settings.read (https://developer.xero.com/documentation/guides/oauth2/scopes/)."""
        return self._get_one("/Organisation", "Organisations")

    # -- any listed resource (ENDPOINTS) --------------------------------------------------------

    def get_record(self, resource: str, record_id: str) -> dict:
        """GET /{Resource}/{id}: one record of a resource in ENDPOINTS; NotFound when the answer holds none."""
        endpoint = ENDPOINTS[resource]
        return self._get_one(f"{endpoint.path}/{record_id}", endpoint.key)

    def list_records(
        self,
        resource: str,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int = 100,
        order: str = "UpdatedDateUTC ASC",
        include_archived: bool = True,
        statuses: Sequence[str] | None = None,
        where: str | None = None,
    ) -> Page:
        """One page of a resource in ENDPOINTS, changed since ``modified_since`` (If-Modified-Since) when given.

        ``include_archived`` is sent only where the endpoint takes it (contacts, invoices); ``statuses`` is the
        Invoices endpoint's Statuses filter; ``where`` a filter expression
        (https://developer.xero.com/documentation/api/accounting/requests-and-responses)."""
        endpoint = ENDPOINTS[resource]
        query: dict[str, Any] = {"page": page, "pageSize": page_size, "order": order}
        if endpoint.archivable:
            query["includeArchived"] = _bool(include_archived)
        if statuses:
            query["Statuses"] = ",".join(statuses)
        if where:
            query["where"] = where
        headers = {"If-Modified-Since": format_modified_since(modified_since)} if modified_since else {}
        body = self._call("GET", self._accounting + endpoint.path, params=query, headers=headers)
        pagination = body.get("pagination") or {}
        return Page(
            items=body.get(endpoint.key) or [],
            page=int(pagination.get("page", page)),
            page_size=int(pagination.get("pageSize", page_size)),
            page_count=_int_or_none(pagination.get("pageCount")),
            item_count=_int_or_none(pagination.get("itemCount")),
        )

    # -- contacts -------------------------------------------------------------------------------

    def get_contacts(self, ids: Sequence[str]) -> list[dict]:
        return self._get_by_ids("/Contacts", "Contacts", ids, includeArchived="true")

    def search_contacts(self, term: str, *, include_archived: bool = False) -> list[dict]:
        """GET /Contacts?searchTerm=: contacts whose Name, FirstName, LastName, ContactNumber or EmailAddress
        contains ``term``, case-insensitively (https://developer.xero.com/documentation/api/accounting/contacts);
        the first page (100) only: a term that many contacts contain is ambiguous anyway."""
        params = {"searchTerm": term, "page": 1, "includeArchived": _bool(include_archived)}
        return self._call("GET", self._accounting + "/Contacts", params=params).get("Contacts") or []

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

    def create_invoice(self, invoice: dict, *, idempotency_key: str) -> dict:
        """PUT /Invoices (create only): one invoice; Xero answers a repeat of ``idempotency_key`` in its window
        with the first result (https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/)."""
        body = self._call("PUT", self._accounting + "/Invoices", json_body={"Invoices": [invoice]},
                          idempotency_key=idempotency_key)
        return body["Invoices"][0]

    def get_invoices(self, ids: Sequence[str]) -> list[dict]:
        return self._get_by_ids("/Invoices", "Invoices", ids, includeArchived="true")

    # -- credit notes ---------------------------------------------------------------------------

    def get_credit_notes(self, ids: Sequence[str]) -> list[dict]:
        found: list[dict] = []
        for chunk in _chunks(ids, MAX_WHERE_IDS_PER_CALL):
            where = " OR ".join(f'CreditNoteID==Guid("{credit_note_id}")' for credit_note_id in chunk)
            body = self._call("GET", self._accounting + "/CreditNotes", params={"where": where, "page": 1})
            found.extend(body.get("CreditNotes") or [])
        return found

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
        """Send one request through the pipeline (connector.http) and decode its body."""
        extra = dict(headers or {})
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key  # a retried write is not applied twice
        response, _ = self._pipeline.send(method, url, params=params, headers=extra, json=json_body, scoped=tenant)
        return loads_from_api(response.content) if response.content else {}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
