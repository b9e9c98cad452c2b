"""Zoho CRM v8 client: one method per endpoint, per-record results for writes.

Zoho's pages: https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html (records),
https://www.zoho.com/crm/developer/docs/api/v8/notifications/overview.html (channels),
https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html (limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import requests

from connector.errors import ApiError, RecordRejected
from connector.http import DEFAULT_TIMEOUT, RequestPipeline
from connector.zoho.hooks import RATE_LIMIT_RETRY_AFTER, ZohoApiHooks, describe_zoho_error

if TYPE_CHECKING:
    from connector.zoho.auth import ZohoTokenSource

MAX_RECORDS_PER_WRITE = 100  # insert / update / upsert (insert-records page above)
MAX_IDS_PER_READ = 100  # the documented cap was cut off; 100 is the common assumption
# `fields` is mandatory on lists, at most 50 (https://www.zoho.com/crm/developer/docs/api/v8/get-records.html).
MAX_FIELDS_PER_LIST = 50


@dataclass(frozen=True)
class RecordResult:
    index: int  # position in the records the caller passed
    ok: bool
    id: str | None
    action: str | None  # "insert" | "update"
    code: str
    message: str
    details: dict

    @property
    def error_text(self) -> str:
        return describe_zoho_error(self.code, self.message, self.details)

    def raise_if_rejected(self) -> None:
        if not self.ok:
            raise RecordRejected(f"Zoho rejected record {self.index}: {self.error_text}",
                                 code=self.code, details=self.details)


def format_zoho_datetime(moment: datetime) -> str:
    """ISO-8601 with offset and no fraction: Zoho rejects milliseconds; naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.replace(microsecond=0).isoformat()


def parse_record_results(
    items: Sequence[dict], *, offset: int = 0, default_action: str | None = None
) -> list[RecordResult]:
    results = []
    for position, item in enumerate(items):
        details = item.get("details") or {}
        ok = item.get("status") == "success"
        results.append(RecordResult(
            index=offset + position,
            ok=ok,
            id=str(details["id"]) if ok and details.get("id") is not None else None,
            action=item.get("action") or (default_action if ok else None),
            code=str(item.get("code", "")),
            message=str(item.get("message", "")),
            details=details,
        ))
    return results


def replay_safe(records: Sequence[dict]) -> bool:
    """Whether Zoho may receive these records twice with the effect of once.

    Keyed upserts and updates of plain fields are; subform and line-item rows are not: Zoho adds a
    row sent without an id again on every replay, and a replayed ``_delete`` names a row already
    gone (v8 "Update Subform Data"). Such writes are not retried on a lost answer: the caller
    reads Zoho's state and decides again.
    """
    for record in records:
        for value in record.values():
            if isinstance(value, list) and any(
                isinstance(row, dict) and ("id" not in row or "_delete" in row) for row in value
            ):
                return False
    return True


def _chunks(values: Sequence[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    for start in range(0, len(values), size):
        yield start, list(values[start : start + size])


class ZohoClient:
    def __init__(self, *, session: requests.Session, tokens: "ZohoTokenSource",
                 rate_limit_wait: float = RATE_LIMIT_RETRY_AFTER) -> None:
        self._pipeline = RequestPipeline(session, ZohoApiHooks(tokens, rate_limit_wait=rate_limit_wait),
                                         tokens=tokens)

    def __repr__(self) -> str:
        return "ZohoClient()"

    # -- records: writes ------------------------------------------------------------------------

    def upsert(
        self,
        module: str,
        records: Sequence[dict],
        *,
        duplicate_check_fields: Sequence[str],
        trigger: Sequence[str] = (),
    ) -> list[RecordResult]:
        """POST /{module}/upsert in chunks of 100; ``trigger=()`` suppresses Zoho automation."""
        extra = {"duplicate_check_fields": list(duplicate_check_fields)}
        return self._write("POST", f"/{module}/upsert", records, trigger, extra, None,
                           retry_transport=replay_safe(records))

    def insert(self, module: str, records: Sequence[dict], *, trigger: Sequence[str] = ()) -> list[RecordResult]:
        # Not retried on a lost answer: a second insert would create duplicates.
        return self._write("POST", f"/{module}", records, trigger, {}, "insert", retry_transport=False)

    def update(self, module: str, records: Sequence[dict], *, trigger: Sequence[str] = ()) -> list[RecordResult]:
        if any(not record.get("id") for record in records):
            raise ValueError("every record passed to update() needs its Zoho id")
        return self._write("PUT", f"/{module}", records, trigger, {}, "update", retry_transport=replay_safe(records))

    def _write(
        self,
        method: str,
        path: str,
        records: Sequence[dict],
        trigger: Sequence[str],
        extra: dict,
        default_action: str | None,
        retry_transport: bool = True,
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        for offset, chunk in _chunks(records, MAX_RECORDS_PER_WRITE):
            body = {"data": chunk, **extra, "trigger": list(trigger)}
            # 201 all ok, 207 mixed, 400 may still carry one item per record (status-codes page).
            answer = self._call(method, path, json_body=body, item_key="data", retry_transport=retry_transport)
            items = answer.get("data") or []
            if len(items) != len(chunk):
                raise ApiError(f"Zoho {method} {path}: {len(items)} results for {len(chunk)} records", status=200)
            results.extend(parse_record_results(items, offset=offset, default_action=default_action))
        return results

    # -- records: reads -------------------------------------------------------------------------

    def get_record(self, module: str, record_id: str) -> dict | None:
        data = self._call("GET", f"/{module}/{record_id}").get("data") or []
        return data[0] if data else None

    def get_records(self, module: str, ids: Sequence[str], fields: Sequence[str]) -> list[dict]:
        found: list[dict] = []
        for _, chunk in _chunks(list(dict.fromkeys(ids)), MAX_IDS_PER_READ):
            params = {"ids": ",".join(chunk), "fields": _fields(fields)}
            found.extend(self._call("GET", f"/{module}", params=params).get("data") or [])
        return found

    def related_records(self, module: str, record_id: str, related_list: str, fields: Sequence[str]) -> list[dict]:
        """GET /{module}/{id}/{related_list} (v8 "Get Related Records"), one page of up to 200; 204 gives []."""
        params = {"fields": _fields(fields), "per_page": 200}
        return self._call("GET", f"/{module}/{record_id}/{related_list}", params=params).get("data") or []

    def list_records(
        self,
        module: str,
        *,
        fields: Sequence[str],
        modified_since: datetime | None = None,
        page: int = 1,
        per_page: int = 200,
    ) -> tuple[list[dict], bool]:
        """One page and whether more follow; 204 (empty) and 304 (nothing modified) give ([], False)."""
        headers = {"If-Modified-Since": format_zoho_datetime(modified_since)} if modified_since else {}
        params = {"fields": _fields(fields), "page": page, "per_page": per_page}
        body = self._call("GET", f"/{module}", params=params, headers=headers)
        return body.get("data") or [], bool((body.get("info") or {}).get("more_records"))

    # -- metadata -------------------------------------------------------------------------------

    def org(self) -> dict:
        """GET /crm/v8/org: the org's details, its home currency (``iso_code``) among them
        (https://www.zoho.com/crm/developer/docs/api/v8/get-org-data.html; scope ZohoCRM.org.READ)."""
        return (self._call("GET", "/org").get("org") or [{}])[0]

    def modules(self) -> list[dict]:
        return self._call("GET", "/settings/modules").get("modules") or []

    def fields(self, module: str) -> list[dict]:
        return self._call("GET", "/settings/fields", params={"module": module}).get("fields") or []

    def create_fields(self, module: str, fields: list[dict]) -> list[dict]:
        """POST /settings/fields?module= (v8 "Create Field"); each item's api_name comes from its label."""
        items = self._call("POST", "/settings/fields", params={"module": module}, json_body={"fields": fields},
                           item_key="fields").get("fields") or []
        for item in items:
            if item.get("status") != "success":
                raise RecordRejected(
                    "Zoho POST /settings/fields: " + describe_zoho_error(item.get("code"), item.get("message"),
                                                                          item.get("details")),
                    code=str(item.get("code", "")), details=item.get("details") or {})
        return items

    # -- notification channels (notifications page above) -------------------------------------

    def enable_watch(self, channels: list[dict]) -> list[dict]:
        return self._watch("POST", channels)

    def update_watch(self, channels: list[dict]) -> list[dict]:
        """PATCH: only the given keys change (PUT would drop the others); use it to renew expiry."""
        return self._watch("PATCH", channels)

    def get_watch(self) -> list[dict]:
        return self._call("GET", "/actions/watch").get("watch") or []

    def disable_watch(self, channel_ids: Sequence[str | int]) -> None:
        self._call("DELETE", "/actions/watch", params={"channel_ids": ",".join(str(c) for c in channel_ids)})

    def _watch(self, method: str, channels: list[dict]) -> list[dict]:
        payload = [
            {k: format_zoho_datetime(v) if isinstance(v, datetime) else v for k, v in channel.items()}
            for channel in channels
        ]
        items = self._call(method, "/actions/watch", json_body={"watch": payload}, item_key="watch").get("watch") or []
        for item in items:
            if item.get("status") == "error":
                raise RecordRejected(
                    f"Zoho {method} /actions/watch: " + describe_zoho_error(item.get("code"), item.get("message"),
                                                                             item.get("details")),
                    code=str(item.get("code", "")), details=item.get("details") or {})
        return items

    # -- plumbing -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        item_key: str | None = None,
        retry_transport: bool = True,
    ) -> dict:
        """Send one request through the pipeline (connector.http) and return its JSON body.

        With ``item_key``, a 400 whose body lists per-item results is returned for the caller to parse.
        """
        accept = _per_item_results(item_key) if item_key else None
        _, body = self._pipeline.send(method, path, params=params, headers=headers, json=json_body,
                                      timeout=DEFAULT_TIMEOUT, retry_transport=retry_transport, accept=accept)
        return body if isinstance(body, dict) else {}


def _per_item_results(item_key: str):
    def accept(response: requests.Response, body: Any) -> bool:
        return response.status_code == 400 and isinstance(body, dict) and isinstance(body.get(item_key), list)

    return accept


def _fields(fields: Sequence[str]) -> str:
    if not fields or len(fields) > MAX_FIELDS_PER_LIST:
        raise ValueError(f"Zoho list reads need 1 to {MAX_FIELDS_PER_LIST} fields, got {len(fields)}")
    return ",".join(fields)

