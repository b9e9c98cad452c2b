"""A Zoho CRM v8 simulator: accounts server (OAuth), Records, metadata and notification channels.

Served over real HTTP by ``serve()``; only scheme, host and port differ from Zoho. Facts follow Zoho's
v8 pages (https://www.zoho.com/crm/developer/docs/api/v8/) and its OpenAPI specs
(https://github.com/zoho/crm-oas); comments cite them as "Zoho: ..." or mark a choice UNVERIFIED where no
source settles it. State lives in memory; tests drive it through HTTP and
through the Python hooks (``issue_refresh_token``, ``person_edit``, ``deliver_notifications``...).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from werkzeug.wrappers import Request, Response

from connector.clock import Clock
from connector.sandbox.common import RequestRecord, SandboxApp

FULL_SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.notifications.ALL"
ACCESS_TOKEN_SECONDS = 3600  # Zoho: access tokens live one hour
MAX_LIVE_ACCESS_TOKENS = 15  # Zoho: 15 live per refresh token, the 16th evicts the oldest
TOKEN_REQUESTS_PER_WINDOW = 10  # Zoho: 10 access-token requests per refresh token per 10 minutes
TOKEN_WINDOW_SECONDS = 600
GRANT_CODE_SECONDS = 180  # Zoho v7/v8 docs: a grant code lives 3 minutes, one use
MAX_WRITE_RECORDS = 100  # insert/update/upsert
MAX_LIST_FIELDS = 50
MAX_PER_PAGE = 200
SUB_CONCURRENCY_RECORDS = 10  # writes of more than 10 records count against sub-concurrency
CHANNEL_DEFAULT = timedelta(hours=1)  # v4+: missing or too-far expiry silently becomes 1 hour
CHANNEL_MAX = timedelta(weeks=1)
MAX_CHANNEL_TOKEN = 50
CENT = Decimal("0.01")
JSON_TYPE = "application/json;charset=UTF-8"  # what Zoho serves; the SDK parses by content type

API_USER = {"id": "4876876000000390001", "name": "Sandbox API User"}
PERSON_USER = {"id": "4876876000000390002", "name": "Sandbox Sales Person"}
INVOICE_STATUSES = ("Created", "Approved", "Delivered", "Cancelled", "Paid", "Partially Paid", "Void")
ACCOUNT_TYPES = ("-None-", "Analyst", "Competitor", "Customer", "Distributor", "Integrator", "Investor",
                 "Partner", "Press", "Prospect", "Reseller", "Supplier", "Vendor", "Other")
EVENT_OPERATIONS = {"create": "insert", "edit": "update", "delete": "delete"}


# ---------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class FieldSpec:
    api_name: str
    data_type: str  # text, textarea, email, phone, website, currency, double, boolean, date, picklist, lookup, lineitem
    length: int = 255
    mandatory: bool = False
    unique: bool = False
    custom: bool = False
    read_only: bool = False
    lookup: str | None = None  # target module of a lookup
    picklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleSpec:
    api_name: str
    singular: str
    id: str
    display_field: str  # the lookup "name" comes from this field
    duplicate_field: str  # Zoho's system duplicate-check field for upsert
    inventory: bool = False  # not in Free/Standard editions (3P: CData)


MODULES = {
    "Accounts": ModuleSpec("Accounts", "Account", "4876876000000002177", "Account_Name", "Account_Name"),
    "Contacts": ModuleSpec("Contacts", "Contact", "4876876000000002179", "Full_Name", "Email"),
    "Products": ModuleSpec("Products", "Product", "4876876000000002181", "Product_Name", "Product_Name"),
    "Invoices": ModuleSpec("Invoices", "Invoice", "4876876000000002183", "Subject", "Subject", inventory=True),
}


def _text(name: str, length: int, **kw) -> FieldSpec:
    return FieldSpec(name, "text", length, **kw)


def _address(prefix: str, code: str) -> list[FieldSpec]:
    return [_text(f"{prefix}_Street", 250), _text(f"{prefix}_City", 30), _text(f"{prefix}_State", 30),
            _text(f"{prefix}_{code}", 30), _text(f"{prefix}_Country", 30)]


def _money(name: str, **kw) -> FieldSpec:
    return FieldSpec(name, "currency", 16, **kw)


# Standard-layout fields (names from the v8 SDK field list); lengths are Zoho's usual defaults.
STANDARD_FIELDS: dict[str, list[FieldSpec]] = {
    "Accounts": [
        _text("Account_Name", 200, mandatory=True), FieldSpec("Phone", "phone", 30),
        FieldSpec("Fax", "phone", 30), FieldSpec("Website", "website", 255), _text("Account_Number", 40),
        FieldSpec("Account_Type", "picklist", 120, picklist=ACCOUNT_TYPES),
        FieldSpec("Description", "textarea", 32000), *_address("Billing", "Code"), *_address("Shipping", "Code"),
    ],
    "Contacts": [
        _text("Last_Name", 80, mandatory=True), _text("First_Name", 40), _text("Full_Name", 120, read_only=True),
        FieldSpec("Email", "email", 100), FieldSpec("Secondary_Email", "email", 100), FieldSpec("Phone", "phone", 30),
        FieldSpec("Mobile", "phone", 30), FieldSpec("Account_Name", "lookup", lookup="Accounts"), _text("Title", 100),
        *_address("Mailing", "Zip"), FieldSpec("Email_Opt_Out", "boolean"), FieldSpec("Description", "textarea", 32000),
    ],
    "Products": [
        _text("Product_Name", 200, mandatory=True), _text("Product_Code", 40), _money("Unit_Price"),
        FieldSpec("Description", "textarea", 32000), FieldSpec("Product_Active", "boolean"),
        FieldSpec("Taxable", "boolean"),
    ],
    "Invoices": [
        _text("Subject", 255, mandatory=True),
        FieldSpec("Account_Name", "lookup", mandatory=True, lookup="Accounts"),
        FieldSpec("Contact_Name", "lookup", lookup="Contacts"),
        FieldSpec("Invoice_Date", "date"), FieldSpec("Due_Date", "date"),
        FieldSpec("Status", "picklist", 120, picklist=INVOICE_STATUSES),
        _text("Purchase_Order", 100), FieldSpec("Invoiced_Items", "lineitem", mandatory=True),
        _money("Sub_Total", read_only=True), _money("Tax", read_only=True), _money("Discount"), _money("Adjustment"),
        _money("Grand_Total", read_only=True), *_address("Billing", "Code"), *_address("Shipping", "Code"),
        FieldSpec("Terms_and_Conditions", "textarea", 32000), FieldSpec("Description", "textarea", 32000),
    ],
}

# The custom fields our setup step creates in an org (single-line text of 255, unless noted).
XERO_FIELDS: dict[str, list[FieldSpec]] = {
    "Accounts": [_text("Xero_Contact_ID", 255, unique=True, custom=True), _text("Xero_Tax_Number", 255, custom=True),
                 _text("Xero_Status", 255, custom=True), FieldSpec("Xero_Url", "website", 255, custom=True),
                 _money("Xero_Outstanding", custom=True), _money("Xero_Overdue", custom=True),
                 _money("Xero_Total_Invoiced", custom=True), _money("Xero_Credit_Available", custom=True),
                 FieldSpec("Xero_Last_Invoice_Date", "date", custom=True),
                 FieldSpec("Xero_Last_Payment_Date", "date", custom=True),
                 _money("Xero_Last_Payment_Amount", custom=True), _text("Xero_Payment_Status", 255, custom=True)],
    "Contacts": [_text("Xero_Person_Key", 255, unique=True, custom=True)],
    "Products": [_text("Xero_Item_Code", 255, unique=True, custom=True)],
    "Invoices": [_text("Xero_Invoice_ID", 255, unique=True, custom=True), _money("Xero_Amount_Paid", custom=True),
                 _money("Xero_Amount_Due", custom=True), FieldSpec("Xero_Url", "website", 255, custom=True)],
}

LINE_ITEM_FIELDS = ("id", "Product_Name", "Quantity", "List_Price", "Discount", "Tax", "Description")
LINE_ITEM_COMPUTED = ("Total", "Total_After_Discount", "Net_Total")
SYSTEM_KEYS = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Owner", "Tag", "$approval_state"}


def _json_type(data_type: str) -> str:
    return {"currency": "double", "double": "double", "boolean": "boolean", "lookup": "jsonobject",
            "lineitem": "jsonarray"}.get(data_type, "string")


def _field_metadata(spec: FieldSpec, field_id: str) -> dict:
    """One entry of GET /settings/fields, using the key names of Zoho's fields.json."""
    lookup = {}
    if spec.lookup:
        target = MODULES[spec.lookup]
        lookup = {"display_label": spec.lookup, "api_name": spec.api_name, "id": field_id,
                  "module": {"api_name": target.api_name, "id": target.id}}
    return {
        "api_name": spec.api_name,
        "id": field_id,
        "field_label": spec.api_name.replace("_", " "),
        "display_label": spec.api_name.replace("_", " "),
        "data_type": spec.data_type,
        "json_type": _json_type(spec.data_type),
        "length": spec.length,
        "decimal_place": 2 if spec.data_type == "currency" else None,
        "system_mandatory": spec.mandatory,
        "custom_field": spec.custom,
        "read_only": spec.read_only,
        "field_read_only": spec.read_only,
        "visible": True,
        "unique": {"casesensitive": "false"} if spec.unique else {},
        "lookup": lookup,
        "currency": {"rounding_option": "normal", "precision": 2} if spec.data_type == "currency" else {},
        "pick_list_values": [
            {"display_value": v, "actual_value": v, "id": f"{field_id}{n:03d}", "sequence_number": n,
             "type": "used", "colour_code": None}
            for n, v in enumerate(spec.picklist, start=1)
        ],
        "associated_module": None,
        "api_supported": True,
    }


# ---------------------------------------------------------------------------------------------
# Small helpers


def _stamp(moment: datetime) -> str:
    """Zoho's time format: ISO 8601 with offset and no fraction."""
    return moment.replace(microsecond=0).isoformat()


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _plain(value):
    """Internal values to JSON: Decimal as a number (Zoho sends 110.0), datetimes in Zoho's format."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _plain_scalar(value) if isinstance(value, (Decimal, datetime)) else value


def _plain_scalar(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return _stamp(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json(payload, status: int = 200) -> Response:
    # The C encoder walks the payload and calls back only for the values JSON has no type for.
    return Response(json.dumps(payload, default=_plain_scalar), status=status, content_type=JSON_TYPE)


def _error(status: int, code: str, message: str, details: dict | None = None) -> Response:
    """Request-level errors are a top-level API_Exception (common.json)."""
    return _json({"code": code, "details": details or {}, "message": message, "status": "error"}, status)


def _item_error(code: str, message: str, api_name: str, json_path: str, **extra) -> dict:
    return {"code": code, "details": {"api_name": api_name, "json_path": json_path, **extra},
            "message": message, "status": "error"}


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # unique: {"casesensitive": "false"}
    return a == b


class _Rejected(Exception):
    """One record failed validation; ``error`` is the Zoho per-record error item."""

    def __init__(self, error: dict) -> None:
        super().__init__(error["code"])
        self.error = error


@dataclass
class _Grant:
    refresh_token: str
    scope: str
    access_tokens: deque = field(default_factory=deque)  # oldest first
    request_times: deque = field(default_factory=deque)
    revoked: bool = False


# ---------------------------------------------------------------------------------------------
# The simulator


class ZohoSandbox(SandboxApp):
    """Zoho CRM v8 plus its accounts server, in one WSGI app."""

    name = "zoho"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        client_id: str = "sandbox-zoho-client",
        client_secret: str = "sandbox-zoho-secret",
        dc: str = "us",
        edition: str = "enterprise",
        concurrency_limit: int = 20,
        sub_concurrency_limit: int = 10,
        xero_fields: bool = True,
        org_id: str = "4876876000000010001",
        company_name: str = "Sandbox CRM Org",
    ) -> None:
        super().__init__(clock)
        self.org_id = org_id  # GET /crm/v8/org: one org per sandbox, like one org per Zoho account
        self.company_name = company_name
        self.client_id = client_id
        self.client_secret = client_secret
        self.dc = dc
        self.edition = edition
        self.concurrency_limit = concurrency_limit
        self.sub_concurrency_limit = sub_concurrency_limit
        self.xero_fields = xero_fields
        self.modules = {
            name: spec for name, spec in MODULES.items()
            if not (spec.inventory and edition in ("free", "standard"))
        }
        self.fields: dict[str, dict[str, FieldSpec]] = {
            name: {f.api_name: f for f in STANDARD_FIELDS[name] + (XERO_FIELDS[name] if xero_fields else [])}
            for name in self.modules
        }
        self._lock = threading.RLock()
        self._ids = itertools.count(4876876000000400001)  # 19-digit numeric ids, like Zoho's
        self._records: dict[str, dict[str, dict]] = {name: {} for name in self.modules}
        # (module, field) -> case-folded text value -> ids of the records holding it; built on first use
        # for the fields upserts match on and unique checks test, so neither scans every record.
        self._by_value: dict[tuple[str, str], dict[str, set[str]]] = {}
        self._grants: dict[str, _Grant] = {}
        self._codes: dict[str, tuple[str, float, bool]] = {}  # code -> (scope, expires_at, offline)
        self._access: dict[str, tuple[_Grant, float]] = {}  # token -> (grant, expires_at)
        self._token_calls = 0
        self._channels: dict[str, dict] = {}
        self._outbox: list[tuple[str, dict]] = []
        self._writes: list[dict] = []
        self._in_flight = 0
        self._sub_in_flight = 0
        self._gate: threading.Event | None = None
        self._partial_writes = 0  # writes left that refuse every other record (fail_partially)

    # ----------------------------------------------------------------- hooks for tests

    def issue_refresh_token(self, scope: str = FULL_SCOPE) -> str:
        """A refresh token as if a person had consented (no HTTP round trip)."""
        with self._lock:
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._grants[token] = _Grant(token, scope)
            return token

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            grant = self._grants.get(refresh_token)
            if grant:
                grant.revoked = True
                for access in grant.access_tokens:
                    self._access.pop(access, None)

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = {t: (g, 0.0) for t, (g, _) in self._access.items()}

    def token_requests(self) -> int:
        with self._lock:
            return self._token_calls

    def records(self, module: str) -> list[dict]:
        with self._lock:
            return [self._render(module, r) for r in self._records[module].values()]

    def record(self, module: str, record_id: str) -> dict | None:
        with self._lock:
            rec = self._records[module].get(record_id)
            return self._render(module, rec) if rec else None

    def writes(self, module: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(w) for w in self._writes if module is None or w["module"] == module]

    def channels(self) -> list[dict]:
        """Live channels only, in the shape GET /actions/watch lists them."""
        with self._lock:
            return [self._channel_view(c) for c in self._live_channels()]

    def lapse_channel(self, channel_id: str) -> None:
        with self._lock:
            self._channels[str(channel_id)]["expires_at"] = self.clock.now()

    def pending_notifications(self) -> list[dict]:
        with self._lock:
            return [dict(payload) for _, payload in self._outbox]

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def hold_requests(self) -> None:
        """From now on CRM API calls wait (while counted in flight) until ``release_requests``."""
        with self._lock:
            self._gate = threading.Event()

    def release_requests(self) -> None:
        with self._lock:
            gate, self._gate = self._gate, None
        if gate:
            gate.set()

    def fail_partially(self, writes: int = 1) -> int:
        """The next ``writes`` record writes apply only the even-indexed records and refuse the others
        with INTERNAL_ERROR: a 207 multi-status answer, as Zoho gives when part of a batch fails."""
        with self._lock:
            self._partial_writes = max(0, self._partial_writes + writes)
            return self._partial_writes

    def person_create(self, module: str, **fields) -> dict:
        """A person adds a record in the CRM UI: validated like the API, notifies channels."""
        with self._lock:
            try:
                clean = self._validate(module, fields, "$", existing=None)
            except _Rejected as exc:
                raise ValueError(exc.error) from None
            rec = self._insert(module, clean, PERSON_USER)
            self._notify(module, "insert", [rec["id"]], {})
            return self._render(module, rec)

    def person_edit(self, module: str, record_id: str, **changes) -> dict:
        with self._lock:
            existing = self._records[module][record_id]
            try:
                clean = self._validate(module, changes, "$", existing=existing)
            except _Rejected as exc:
                raise ValueError(exc.error) from None
            changed = self._update(module, existing, clean, PERSON_USER)
            self._notify(module, "update", [record_id], {record_id: changed})
            return self._render(module, existing)

    def person_delete(self, module: str, record_id: str) -> None:
        with self._lock:
            self._unindex(module, self._records[module].pop(record_id))
            self._notify(module, "delete", [record_id], {})

    def deliver_notifications(self, timeout: float = 5.0) -> list[int]:
        """POST queued callbacks to their notify_url; returns HTTP statuses (0 = unreachable).

        Zoho's retry behaviour on failure is UNVERIFIED, so a failed callback is simply lost
        (the connector must reconcile by Modified_Time anyway).
        """
        with self._lock:
            outbox, self._outbox = self._outbox, []
        statuses = []
        for url, payload in outbox:
            try:
                statuses.append(requests.post(url, json=payload, timeout=timeout).status_code)
            except requests.RequestException:
                statuses.append(0)
        return statuses

    # ----------------------------------------------------------------- WSGI entry

    def handle(self, request: Request, record: RequestRecord) -> Response:
        path = request.path
        if path.startswith("/oauth/v2/"):
            return self._accounts(request)
        if not path.startswith("/crm/v8/"):
            return _error(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        grant = self._authorize(request)
        if grant is None:
            return _error(401, "INVALID_TOKEN", "invalid oauth token")
        parts = [p for p in path[len("/crm/v8/"):].split("/") if p]
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                return _error(400, "INVALID_DATA", "Please check whether the input values are correct", {})
        heavy = request.method in ("POST", "PUT") and isinstance(body, dict) and \
            isinstance(body.get("data"), list) and len(body["data"]) > SUB_CONCURRENCY_RECORDS
        with self._lock:
            if self._in_flight >= self.concurrency_limit or (heavy and self._sub_in_flight >= self.sub_concurrency_limit):
                # Zoho: 429 TOO_MANY_REQUESTS for concurrency; exact message UNVERIFIED
                return _error(429, "TOO_MANY_REQUESTS", "concurrency limit exceeded", {})
            self._in_flight += 1
            self._sub_in_flight += heavy
            gate = self._gate
        try:
            if gate is not None:
                gate.wait(timeout=10)
            scope_error = self._check_scope(grant, parts)
            return scope_error or self._route(request, parts, body)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._sub_in_flight -= heavy

    def _route(self, request: Request, parts: list[str], body) -> Response:
        method = request.method
        if parts == ["settings", "modules"] and method == "GET":
            return self._list_modules()
        if parts == ["settings", "fields"] and method == "GET":
            return self._list_fields(request.args.get("module"))
        if parts == ["settings", "fields"] and method == "POST":
            return self._create_fields(request.args.get("module"), body)
        if parts == ["org"] and method == "GET":
            return self._org()
        if parts == ["actions", "watch"]:
            handler = {"GET": self._watch_list, "POST": self._watch_enable, "PUT": self._watch_replace,
                       "PATCH": self._watch_patch, "DELETE": self._watch_disable}.get(method)
            return handler(request, body) if handler else self._bad_method()
        if not parts or parts[0] in ("settings", "actions") or len(parts) > 2:
            return _error(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        module = parts[0]
        if module not in self.modules:
            # Zoho documents this for a bad name or a module the edition/profile lacks
            return _error(400, "INVALID_MODULE", "The module name given seems to be invalid", {})
        if len(parts) == 1:
            if method == "GET":
                return self._get_list(module, request)
            if method == "POST":
                return self._write_request(module, body, "insert")
            if method == "PUT":
                return self._write_request(module, body, "update")
            if method == "DELETE":
                return self._delete(module, request.args.get("ids", ""))
        elif parts[1] == "upsert":
            if method == "POST":
                return self._write_request(module, body, "upsert")
        else:
            if method == "GET":
                return self._get_one(module, parts[1], request)
            if method == "PUT":
                return self._write_request(module, body, "update", record_id=parts[1])
            if method == "DELETE":
                return self._delete(module, parts[1])
        return self._bad_method()

    @staticmethod
    def _bad_method() -> Response:
        return _error(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")

    # ----------------------------------------------------------------- accounts server

    def _accounts(self, request: Request) -> Response:
        if request.path == "/oauth/v2/auth" and request.method == "GET":
            return self._authorize_page(request)
        if request.path == "/oauth/v2/token" and request.method == "POST":
            return self._token(request)
        if request.path == "/oauth/v2/token/revoke" and request.method == "POST":
            self.revoke(request.values.get("token", ""))
            return _json({"status": "success"})  # body shape UNVERIFIED
        return _json({"error": "invalid_request"}, 400)

    def _authorize_page(self, request: Request) -> Response:
        """Consent happens at once; Zoho redirects with code, location and accounts-server."""
        args = request.args
        if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
            return _json({"error": "invalid_client"}, 400)
        code = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._lock:
            # refresh tokens only come with access_type=offline (Zoho multi-DC doc)
            self._codes[code] = (args.get("scope", FULL_SCOPE), self.clock.time() + GRANT_CODE_SECONDS,
                                 args.get("access_type") == "offline")
        query = {"code": code, "location": self.dc, "accounts-server": self.base_url}
        if "state" in args:
            query["state"] = args["state"]
        redirect = args["redirect_uri"]
        return Response(status=302, headers={"Location": f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(query)}"})

    def _token(self, request: Request) -> Response:
        params = request.values  # query string or form body, as Zoho allows
        with self._lock:
            self._token_calls += 1
            if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
                return _json({"error": "invalid_client"})  # Zoho answers these with HTTP 200
            grant_type = params.get("grant_type")
            now = self.clock.time()
            if grant_type == "authorization_code":
                scope, expires_at, offline = self._codes.pop(params.get("code", ""), ("", 0.0, False))
                if expires_at <= now:
                    return _json({"error": "invalid_code"})
                grant = self._grants[self.issue_refresh_token(scope)]
                body = self._mint_access_token(grant, now)
                if offline:
                    body["refresh_token"] = grant.refresh_token
                return _json(body)
            if grant_type == "refresh_token":
                grant = self._grants.get(params.get("refresh_token", ""))
                if grant is None or grant.revoked:
                    return _json({"error": "invalid_code"})
                while grant.request_times and grant.request_times[0] <= now - TOKEN_WINDOW_SECONDS:
                    grant.request_times.popleft()
                if len(grant.request_times) >= TOKEN_REQUESTS_PER_WINDOW:
                    return _json({"error_description": "You have made too many requests continuously. "
                                  "Please try again after some time.", "error": "Access Denied", "status": "failure"})
                grant.request_times.append(now)
                return _json(self._mint_access_token(grant, now))
            return _json({"error": "unsupported_grant_type"})

    def _mint_access_token(self, grant: _Grant, now: float) -> dict:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        grant.access_tokens.append(token)
        while len(grant.access_tokens) > MAX_LIVE_ACCESS_TOKENS:
            self._access.pop(grant.access_tokens.popleft(), None)
        self._access[token] = (grant, now + ACCESS_TOKEN_SECONDS)
        return {"access_token": token, "scope": grant.scope, "api_domain": self.base_url,
                "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}

    def _authorize(self, request: Request) -> _Grant | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme not in ("Zoho-oauthtoken", "Bearer"):
            return None
        with self._lock:
            grant, expires_at = self._access.get(token.strip(), (None, 0.0))
            if grant is None or grant.revoked or expires_at <= self.clock.time():
                return None
            return grant

    @staticmethod
    def _check_scope(grant: _Grant, parts: list[str]) -> Response | None:
        family = {"settings": "ZohoCRM.settings.", "actions": "ZohoCRM.notifications.", "org": "ZohoCRM.org."}.get(
            parts[0] if parts else "", "ZohoCRM.modules.")
        if any(s.strip().startswith(family) for s in grant.scope.split(",")):
            return None
        return _error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")

    # ----------------------------------------------------------------- metadata

    def _org(self) -> Response:
        """GET /crm/v8/org: ``{"org": [Org]}`` (Zoho v8 OAS org.json, scope ZohoCRM.org.READ)."""
        return _json({"org": [{
            "id": self.org_id, "zgid": self.org_id[-9:], "company_name": self.company_name,
            "domain_name": f"org{self.org_id[-9:]}", "country_code": self.dc.upper(), "currency": "NZD",
            "iso_code": "NZD", "time_zone": "Pacific/Auckland", "primary_email": "admin@example.com",
            "type": "production",
        }]})

    def _list_modules(self) -> Response:
        return _json({"modules": [
            {"api_name": m.api_name, "module_name": m.api_name, "id": m.id, "plural_label": m.api_name,
             "singular_label": m.singular, "api_supported": True, "creatable": True, "editable": True,
             "deletable": True, "viewable": True, "visible": True, "show_as_tab": True,
             "generated_type": "default", "status": "visible"}
            for m in self.modules.values()
        ]})

    def _list_fields(self, module: str | None) -> Response:
        if not module:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "module"})
        if module not in self.modules:
            return _error(400, "INVALID_MODULE", "The module name given seems to be invalid", {})
        module_number = list(MODULES).index(module)
        return _json({"fields": [
            _field_metadata(f, f"48768760000{module_number:02d}{n:06d}")  # 19-digit ids, unique per org
            for n, f in enumerate(self.fields[module].values(), start=1)
        ]})

    _CREATABLE_TYPES = {"text": "text", "currency": "currency", "website": "website", "email": "email",
                        "phone": "phone", "textarea": "textarea", "boolean": "boolean", "date": "date"}

    def _create_fields(self, module: str | None, body) -> Response:
        """POST /settings/fields?module= (fields.json "Create Field"): body {"fields": [...]}, 201 with
        one SUCCESS item per field, details.id. Zoho derives api_name from field_label (spaces become
        underscores); per-item error codes beyond the OpenAPI's generic ones are UNVERIFIED."""
        if not module:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "module"})
        if module not in self.modules:
            return _error(400, "INVALID_MODULE", "The module name given seems to be invalid", {})
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "fields", "json_path": "$.fields"})
        results = []
        with self._lock:
            for n, item in enumerate(items):
                label = item.get("field_label") if isinstance(item, dict) else None
                kind = self._CREATABLE_TYPES.get(item.get("data_type")) if isinstance(item, dict) else None
                if not label or kind is None:
                    results.append(_item_error("INVALID_DATA", "invalid data",
                                               "data_type" if label else "field_label", f"$.fields[{n}]"))
                    continue
                api_name = re.sub(r"\s+", "_", str(label).strip())
                if api_name in self.fields[module]:
                    results.append(_item_error("DUPLICATE_DATA", "duplicate data", "field_label",
                                               f"$.fields[{n}].field_label"))
                    continue
                self.fields[module][api_name] = FieldSpec(
                    api_name, kind, int(item.get("length") or (16 if kind == "currency" else 255)),
                    unique=bool(item.get("unique")), custom=True)
                field_id = f"48768760000{list(MODULES).index(module):02d}{len(self.fields[module]):06d}"
                results.append({"code": "SUCCESS", "details": {"id": field_id}, "message": "field created",
                                "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        return _json({"fields": results}, 201 if ok == len(results) else 400)

    # ----------------------------------------------------------------- reads

    def _get_list(self, module: str, request: Request) -> Response:
        args = request.args
        wanted = [f for f in args.get("fields", "").split(",") if f.strip()]
        if not wanted:  # mandatory since v3
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "fields"})
        if len(wanted) > MAX_LIST_FIELDS:
            return _error(400, "LIMIT_EXCEEDED", "Maximum number of fields exceeded",  # message UNVERIFIED
                          {"param_name": "fields", "limit": MAX_LIST_FIELDS})
        try:
            per_page = int(args.get("per_page", MAX_PER_PAGE))
            page = int(args.get("page", 1))
        except ValueError:
            return _error(400, "INVALID_DATA", "invalid data", {"param_name": "page"})
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return _error(400, "INVALID_DATA", "invalid data", {"param_name": "per_page" if page >= 1 else "page"})
        sort_by = args.get("sort_by", "id")
        sort_order = args.get("sort_order", "desc")  # Zoho's default order is desc
        if sort_by not in ("id", "Created_Time", "Modified_Time") or sort_order not in ("asc", "desc"):
            return _error(400, "INVALID_DATA", "invalid data",
                          {"param_name": "sort_by" if sort_order in ("asc", "desc") else "sort_order"})
        with self._lock:
            records = self._records[module]
            if args.get("ids"):
                rows = [records[i] for i in set(args["ids"].split(",")) if i in records]
            else:
                rows = list(records.values())
            since = request.headers.get("If-Modified-Since")
            if since:
                try:
                    cutoff = datetime.fromisoformat(since)
                except ValueError:
                    return _error(400, "INVALID_DATA", "invalid data", {"param_name": "If-Modified-Since"})
                rows = [r for r in rows if r["Modified_Time"] > cutoff]
                if not rows:
                    return Response(status=304)
            key = (lambda r: int(r["id"])) if sort_by == "id" else (lambda r: (r[sort_by], int(r["id"])))
            rows.sort(key=key, reverse=sort_order == "desc")
            chunk = rows[(page - 1) * per_page: page * per_page]
            if not chunk:
                return Response(status=204)
            data = [self._render(module, r, wanted) for r in chunk]
        return _json({"data": data, "info": {
            "per_page": per_page, "count": len(data), "page": page, "sort_by": sort_by, "sort_order": sort_order,
            "more_records": page * per_page < len(rows), "next_page_token": None, "previous_page_token": None,
            "page_token_expiry": None,
        }})

    def _get_one(self, module: str, record_id: str, request: Request) -> Response:
        wanted = [f for f in request.args.get("fields", "").split(",") if f.strip()] or None
        with self._lock:
            rec = self._records[module].get(record_id)
            if rec is None:
                return Response(status=204)  # Zoho's exact answer for an unknown id is UNVERIFIED
            return _json({"data": [self._render(module, rec, wanted)]})

    def _render(self, module: str, rec: dict, wanted: list[str] | None = None) -> dict:
        out = {}
        for key, value in rec.items():
            if wanted is not None and key != "id" and key not in wanted:
                continue
            spec = self.fields[module].get(key)
            if spec is not None and spec.lookup and value is not None:
                value = self._lookup_view(spec.lookup, value["id"])
            elif key == "Invoiced_Items":
                value = [{**line, "Product_Name": self._lookup_view("Products", line["Product_Name"]["id"])}
                         for line in value]
            out[key] = _plain(value)
        return out

    def _lookup_view(self, module: str, record_id: str) -> dict:
        target = self._records.get(module, {}).get(record_id, {})
        return {"id": record_id, "name": target.get(self.modules[module].display_field)}

    # ----------------------------------------------------------------- writes

    def _write_request(self, module: str, body, op: str, record_id: str | None = None) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "data", "json_path": "$.data"})
        items = body["data"]
        if len(items) > MAX_WRITE_RECORDS:
            return _error(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": MAX_WRITE_RECORDS})
        trigger = body.get("trigger")  # None = omitted = workflows, approvals and blueprints run
        dup_fields = body.get("duplicate_check_fields") if op == "upsert" else None
        if record_id is not None:
            items = [{**items[0], "id": record_id}]
        results = []
        touched: dict[str, list[str]] = {"insert": [], "update": []}
        changed_fields: dict[str, list[str]] = {}
        with self._lock:
            partial = self._partial_writes > 0 and len(items) > 1
            self._partial_writes -= partial
            for index, item in enumerate(items):
                if partial and index % 2:
                    results.append(_item_error("INTERNAL_ERROR", "internal error", "data", f"$.data[{index}]"))
                    continue
                try:
                    result = self._write_one(module, item, index, op, dup_fields)
                except _Rejected as exc:
                    results.append(exc.error)
                    continue
                rec, action, changed, dup_field = result
                touched[action].append(rec["id"])
                if action == "update":
                    changed_fields[rec["id"]] = changed
                item_result = {
                    "code": "SUCCESS",
                    "details": {"Modified_Time": rec["Modified_Time"], "Modified_By": rec["Modified_By"],
                                "Created_Time": rec["Created_Time"], "id": rec["id"], "Created_By": rec["Created_By"]},
                    "message": "record added" if action == "insert" else "record updated",
                    "status": "success",
                }
                if op == "upsert":
                    item_result.update(action=action, duplicate_field=dup_field)
                results.append(item_result)
            self._writes.append({"module": module, "op": op, "count": len(items),
                                 "trigger": None if trigger is None else list(trigger)})
            for action, ids in touched.items():
                if ids:  # our own writes notify too, as on Zoho; echo suppression is the connector's job
                    self._notify(module, action, ids, changed_fields)
        ok = sum(r["status"] == "success" for r in results)
        # 201 all-ok / 207 mixed per Zoho's v8 status page; 400 when all fail is UNVERIFIED.
        status = (201 if op != "update" else 200) if ok == len(results) else 207 if ok else 400
        return _json({"data": results}, status)

    def _write_one(self, module: str, item, index: int, op: str, dup_fields) -> tuple[dict, str, list[str], str | None]:
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "data", path))
        if op == "update":
            existing = self._existing(module, item.get("id"), path)
            clean = self._validate(module, item, path, existing=existing)
            return existing, "update", self._update(module, existing, clean, API_USER), None
        if op == "upsert":
            dup_field, existing = self._match(module, item, path, dup_fields)
            if existing is not None:
                clean = self._validate(module, item, path, existing=existing)
                return existing, "update", self._update(module, existing, clean, API_USER), dup_field
        clean = self._validate(module, item, path, existing=None)
        return self._insert(module, clean, API_USER), "insert", [], None

    def _existing(self, module: str, record_id, path: str) -> dict:
        if record_id in (None, ""):
            raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", "id", f"{path}.id"))
        rec = self._records[module].get(str(record_id))
        if rec is None:
            raise _Rejected(_item_error("INVALID_DATA", "the id given seems to be invalid", "id", f"{path}.id"))
        return rec

    def _match(self, module: str, item: dict, path: str, dup_fields) -> tuple[str | None, dict | None]:
        """Upsert matching: the listed fields in order, else the system field then unique fields."""
        system = self.modules[module].duplicate_field
        unique = [f.api_name for f in self.fields[module].values() if f.unique]
        if dup_fields:
            for name in dup_fields:
                if name != system and name not in unique:
                    raise _Rejected(_item_error("INVALID_DATA", "invalid data", str(name),
                                                "$.duplicate_check_fields"))
            order = list(dup_fields)
        else:
            order = [system, *unique]
        for name in order:
            value = item.get(name)
            if value in (None, ""):
                continue
            # several records can share a system field (plain inserts allow it); the oldest wins (UNVERIFIED)
            holders = self._holders(module, name, value)
            if holders:
                return name, holders[0]
        return None, None

    def _holders(self, module: str, name: str, value) -> list[dict]:
        """The records of ``module`` whose ``name`` equals ``value`` as ``_same`` compares, oldest first."""
        records = self._records[module]
        if not isinstance(value, str):  # numbers and the like are rare here: compare them one by one
            return [rec for rec in records.values() if _same(rec.get(name), value)]
        index = self._by_value.get((module, name))
        if index is None:
            index = self._by_value[(module, name)] = {}
            for rec in records.values():
                self._index_value(index, rec, name)
        ids = index.get(value.casefold(), ())
        return [records[i] for i in sorted(ids, key=int)]  # ids grow with time: the smallest is the oldest

    @staticmethod
    def _index_value(index: dict[str, set[str]], rec: dict, name: str) -> None:
        value = rec.get(name)
        if isinstance(value, str):
            index.setdefault(value.casefold(), set()).add(rec["id"])

    def _index(self, module: str, rec: dict) -> None:
        for (indexed_module, name), index in self._by_value.items():
            if indexed_module == module:
                self._index_value(index, rec, name)

    def _unindex(self, module: str, rec: dict) -> None:
        for (indexed_module, name), index in self._by_value.items():
            value = rec.get(name)
            if indexed_module == module and isinstance(value, str):
                ids = index.get(value.casefold())
                if ids is not None:
                    ids.discard(rec["id"])
                    if not ids:
                        del index[value.casefold()]

    def _validate(self, module: str, item: dict, path: str, *, existing: dict | None) -> dict:
        """Checks one record against the field metadata and returns the values to store."""
        specs = self.fields[module]
        clean: dict = {}
        for key, value in item.items():
            if key in SYSTEM_KEYS:
                continue
            spec = specs.get(key)
            if spec is None:
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", key, f"{path}.{key}"))
            if spec.read_only:
                continue  # computed fields (totals, Full_Name) ignore what is sent
            clean[key] = self._coerce(spec, value, f"{path}.{key}", existing)
        for spec in specs.values():
            if not spec.mandatory:
                continue
            present = clean.get(spec.api_name) if spec.api_name in item else (existing or {}).get(spec.api_name)
            if present in (None, "", []):
                raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found",
                                            spec.api_name, f"{path}.{spec.api_name}"))
        for spec in specs.values():
            value = clean.get(spec.api_name)
            if not spec.unique or value in (None, ""):
                continue
            for rec in self._holders(module, spec.api_name, value):
                if rec is not existing:
                    raise _Rejected(_item_error("DUPLICATE_DATA", "duplicate data", spec.api_name,
                                                f"{path}.{spec.api_name}"))
        return clean

    def _coerce(self, spec: FieldSpec, value, path: str, existing: dict | None):
        def invalid(**extra):
            return _Rejected(_item_error("INVALID_DATA", "invalid data", spec.api_name, path, **extra))

        if value is None:
            return None
        kind = spec.data_type
        if kind in ("text", "textarea", "email", "phone", "website"):
            if not isinstance(value, str):
                raise invalid(expected_data_type=kind)
            if len(value) > spec.length:
                raise invalid(maximum_length=spec.length)
            if kind == "email" and value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
                raise invalid(expected_data_type="email")
            return value
        if kind in ("currency", "double"):
            number = _decimal(value)
            if number is None:
                raise invalid(expected_data_type="double")
            return _cents(number) if kind == "currency" else number
        if kind == "boolean":
            if not isinstance(value, bool):
                raise invalid(expected_data_type="boolean")
            return value
        if kind == "date":
            try:
                date.fromisoformat(value)
            except (TypeError, ValueError):
                raise invalid(expected_data_type="date") from None
            return value
        if kind == "picklist":
            if value not in spec.picklist:
                raise invalid()
            return value
        if kind == "lookup":
            return {"id": self._lookup_id(spec.lookup, value, path, spec.api_name)}
        if kind == "lineitem":
            return self._coerce_lines(value, path, existing)
        raise invalid()  # pragma: no cover - every data type above is handled

    def _lookup_id(self, module: str, value, path: str, api_name: str) -> str:
        record_id = value.get("id") if isinstance(value, dict) else None
        if record_id is None or str(record_id) not in self._records.get(module, {}):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", api_name, path))
        return str(record_id)

    def _coerce_lines(self, lines, path: str, existing: dict | None) -> list[dict]:
        """Invoiced_Items: a line with an existing ``id`` is edited, ``_delete`` removes it, a line
        without ``id`` is added, and lines not mentioned stay (Zoho line-item semantics, UNVERIFIED)."""
        if not isinstance(lines, list):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "Invoiced_Items", path))
        current = {line["id"]: dict(line) for line in (existing or {}).get("Invoiced_Items", [])}
        for n, line in enumerate(lines):
            line_path = f"{path}[{n}]"
            if not isinstance(line, dict):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "Invoiced_Items", line_path))
            line_id = str(line["id"]) if line.get("id") is not None else None
            if line_id is not None and line_id not in current:
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "id", f"{line_path}.id"))
            if line_id is not None and "_delete" in line:
                del current[line_id]
                continue
            target = current.get(line_id) or {"id": str(next(self._ids))}
            unknown = set(line) - set(LINE_ITEM_FIELDS) - set(LINE_ITEM_COMPUTED) - {"_delete"}
            if unknown:
                name = sorted(unknown)[0]
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", name, f"{line_path}.{name}"))
            if "Product_Name" in line or "Product_Name" not in target:
                if not line.get("Product_Name"):
                    raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", "Product_Name",
                                                f"{line_path}.Product_Name"))
                target["Product_Name"] = {"id": self._lookup_id("Products", line["Product_Name"],
                                                                f"{line_path}.Product_Name", "Product_Name")}
            product = self._records["Products"][target["Product_Name"]["id"]]
            defaults = {"Quantity": Decimal(1), "List_Price": product.get("Unit_Price") or Decimal(0),
                        "Discount": Decimal(0), "Tax": Decimal(0)}
            for key, default in defaults.items():
                if key in line:
                    number = _decimal(line[key])
                    if number is None or number < 0:
                        raise _Rejected(_item_error("INVALID_DATA", "invalid data", key, f"{line_path}.{key}",
                                                    expected_data_type="double"))
                    target[key] = number
                else:
                    target.setdefault(key, default)
            if "Description" in line:
                target["Description"] = line["Description"]
            current[target["id"]] = target
        return list(current.values())

    def _insert(self, module: str, clean: dict, user: dict) -> dict:
        now = self.clock.now().replace(microsecond=0)
        rec = {"id": str(next(self._ids)), **{k: v for k, v in clean.items()},
               "Created_Time": now, "Modified_Time": now, "Created_By": dict(user), "Modified_By": dict(user)}
        self._derive(module, rec)
        self._records[module][rec["id"]] = rec
        self._index(module, rec)
        return rec

    def _update(self, module: str, rec: dict, clean: dict, user: dict) -> list[str]:
        changed = [k for k, v in clean.items() if rec.get(k) != v]
        self._unindex(module, rec)
        rec.update(clean)
        rec["Modified_Time"] = self.clock.now().replace(microsecond=0)
        rec["Modified_By"] = dict(user)
        self._derive(module, rec)
        self._index(module, rec)
        return changed

    @staticmethod
    def _derive(module: str, rec: dict) -> None:
        """Read-only values Zoho computes: Full_Name, and invoice line and record totals.

        Invoice arithmetic (Zoho's own formula is UNVERIFIED; this follows the field descriptions
        "Sub total = before taxes and adjustments", "Tax = total tax" (3P: Workato) and the line
        keys Total / Total_After_Discount / Net_Total (3P: CData)):
          line  Total = Quantity x List_Price; Total_After_Discount = Total - Discount (an amount);
                Net_Total = Total_After_Discount + Tax (an amount)
          record Sub_Total = sum(Total_After_Discount); Tax = sum(line Tax);
                 Grand_Total = Sub_Total - Discount + Tax + Adjustment
        each rounded to the cent, half-up.
        """
        if module == "Contacts":
            rec["Full_Name"] = " ".join(p for p in (rec.get("First_Name"), rec.get("Last_Name")) if p)
        if module != "Invoices":
            return
        sub_total = tax = Decimal(0)
        for line in rec.get("Invoiced_Items", []):
            line["Total"] = _cents(line["Quantity"] * line["List_Price"])
            line["Total_After_Discount"] = _cents(line["Total"] - line["Discount"])
            line["Net_Total"] = _cents(line["Total_After_Discount"] + line["Tax"])
            sub_total += line["Total_After_Discount"]
            tax += _cents(line["Tax"])
        rec["Sub_Total"] = _cents(sub_total)
        rec["Tax"] = _cents(tax)
        discount = rec.get("Discount") or Decimal(0)
        adjustment = rec.get("Adjustment") or Decimal(0)
        rec["Grand_Total"] = _cents(rec["Sub_Total"] - discount + rec["Tax"] + adjustment)

    def _delete(self, module: str, ids: str) -> Response:
        wanted = [i for i in ids.split(",") if i]
        if not wanted:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "ids"})
        results, deleted = [], []
        with self._lock:
            for record_id in wanted:
                rec = self._records[module].pop(record_id, None)
                if rec is None:
                    results.append({"code": "INVALID_DATA", "details": {"id": record_id},
                                    "message": "the id given seems to be invalid", "status": "error"})
                else:
                    self._unindex(module, rec)
                    deleted.append(record_id)
                    results.append({"code": "SUCCESS", "details": {"id": record_id},
                                    "message": "record deleted", "status": "success"})
            self._writes.append({"module": module, "op": "delete", "count": len(wanted), "trigger": None})
            if deleted:
                self._notify(module, "delete", deleted, {})
        return _json({"data": results}, 200 if deleted else 400)

    # ----------------------------------------------------------------- notification channels

    def _live_channels(self) -> list[dict]:
        now = self.clock.now()
        return [c for c in self._channels.values() if c["expires_at"] > now]

    def _resource_uri(self, module: str) -> str:
        return f"{self.base_url}/crm/v2/{module}"  # Zoho's samples say /crm/v2/ even on v7+

    def _channel_view(self, channel: dict) -> dict:
        return {
            "channel_id": channel["channel_id"], "events": list(channel["events"]),
            "channel_expiry": _stamp(channel["expires_at"]), "token": channel["token"],
            "notify_url": channel["notify_url"],
            "return_affected_field_values": channel["return_affected_field_values"],
            "notify_on_related_action": channel["notify_on_related_action"],
        }

    def _channel_events(self, channel: dict) -> list[dict]:
        modules = dict.fromkeys(e.split(".")[0] for e in channel["events"])
        return [{"channel_id": channel["channel_id"], "resource_name": m, "resource_id": self.modules[m].id,
                 "resource_uri": self._resource_uri(m), "channel_expiry": _stamp(channel["expires_at"]),
                 "notification_condition": []} for m in modules]

    def _expiry(self, raw, path: str) -> datetime:
        """channel_expiry: missing or beyond one week silently becomes one hour (Zoho v4+);
        fractional seconds are refused with INVALID_DATA (3P reports)."""
        now = self.clock.now().replace(microsecond=0)
        if raw in (None, ""):
            return now + CHANNEL_DEFAULT
        try:
            moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or moment.microsecond or "." in raw or moment <= now:
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "channel_expiry", f"{path}.channel_expiry"))
        return moment if moment - now <= CHANNEL_MAX else now + CHANNEL_DEFAULT

    def _channel_settings(self, item, path: str, base: dict | None) -> dict:
        """Validates one watch item; ``base`` is the channel being patched (keys not sent stay)."""
        if not isinstance(item, dict):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "watch", path))
        channel = dict(base or {"token": None, "return_affected_field_values": False,
                                "notify_on_related_action": True})
        for key in ("channel_id", "events", "notify_url"):
            if base is None and item.get(key) in (None, "", []):
                raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", key, f"{path}.{key}"))
        channel["channel_id"] = str(item.get("channel_id", channel.get("channel_id")))
        if "events" in item:
            events = item["events"]
            for event in events if isinstance(events, list) else [None]:
                module, _, action = str(event).partition(".")
                if module not in self.modules or action not in ("create", "edit", "delete", "all"):
                    raise _Rejected(_item_error("INVALID_DATA", "invalid data", "events", f"{path}.events"))
            if item.get("_delete_events") is True and base is not None:
                events = [e for e in channel["events"] if e not in events]
            channel["events"] = list(events)
        if "notify_url" in item:
            if not str(item["notify_url"]).startswith(("http://", "https://")):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "notify_url", f"{path}.notify_url"))
            channel["notify_url"] = item["notify_url"]
        if "token" in item:
            if item["token"] is not None and (not isinstance(item["token"], str) or len(item["token"]) > MAX_CHANNEL_TOKEN):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "token", f"{path}.token"))
            channel["token"] = item["token"]
        for key in ("return_affected_field_values", "notify_on_related_action"):
            if key in item:
                channel[key] = bool(item[key])
        if base is None or "channel_expiry" in item:
            channel["expires_at"] = self._expiry(item.get("channel_expiry"), path)
        return channel

    def _watch_items(self, body) -> list | None:
        items = body.get("watch") if isinstance(body, dict) else None
        return items if isinstance(items, list) and items else None

    def _watch_write(self, body, *, existing_only: bool, patch: bool, message: str, ok_status: int) -> Response:
        items = self._watch_items(body)
        if items is None:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "watch", "json_path": "$.watch"})
        results = []
        with self._lock:
            for n, item in enumerate(items):
                path = f"$.watch[{n}]"
                channel_id = str(item.get("channel_id")) if isinstance(item, dict) else None
                live = {c["channel_id"]: c for c in self._live_channels()}
                if existing_only and channel_id not in live:
                    results.append({"code": "NOT_SUBSCRIBED", "details": {},
                                    "message": "Not subscribed for actions-watch of the given channel",
                                    "status": "error"})
                    continue
                try:
                    channel = self._channel_settings(item, path, live[channel_id] if patch else None)
                except _Rejected as exc:
                    results.append(exc.error)
                    continue
                self._channels[channel["channel_id"]] = channel
                results.append({"code": "SUCCESS", "details": {"events": self._channel_events(channel)},
                                "message": message, "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        status = ok_status if ok == len(results) else 202 if ok else 400  # 202 = partly failed (OAS)
        return _json({"watch": results}, status)

    def _watch_enable(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=False, patch=False, ok_status=201,
                                 message="Successfully subscribed for actions-watch of the given module")

    def _watch_replace(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=True, patch=False, ok_status=200,
                                 message="Successfully updated the subscribe details")

    def _watch_patch(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=True, patch=True, ok_status=200,
                                 message="Successfully updated the subscribe details")

    def _watch_list(self, request: Request, body) -> Response:
        with self._lock:
            rows = self._live_channels()
            if request.args.get("channel_id"):
                rows = [c for c in rows if c["channel_id"] == request.args["channel_id"]]
            if request.args.get("module"):
                rows = [c for c in rows if any(e.startswith(request.args["module"] + ".") for e in c["events"])]
            if not rows:
                return Response(status=204)
            watch = [self._channel_view(c) for c in rows]
        return _json({"watch": watch, "info": {"per_page": 200, "page": 1, "count": len(watch), "more_records": False}})

    def _watch_disable(self, request: Request, body) -> Response:
        ids = [i for i in request.args.get("channel_ids", "").split(",") if i]
        if not ids:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "channel_ids"})
        results = []
        with self._lock:
            for channel_id in ids:
                if self._channels.pop(channel_id, None) is None:
                    results.append({"code": "NOT_SUBSCRIBED", "details": {},
                                    "message": "Not subscribed for actions-watch of the given channel",
                                    "status": "error"})
                else:
                    results.append({"code": "SUCCESS", "details": {"channel_id": channel_id},
                                    "message": "Successfully un-subscribed from actions-watch", "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        return _json({"watch": results}, 200 if ok == len(results) else 202 if ok else 400)

    def _notify(self, module: str, operation: str, ids: list[str], changed: dict[str, list[str]]) -> None:
        """Queues one callback per live channel watching this module and operation (caller holds the lock)."""
        for channel in self._live_channels():
            events = channel["events"]
            action = next((a for a, op in EVENT_OPERATIONS.items() if op == operation), "")
            if f"{module}.all" not in events and f"{module}.{action}" not in events:
                continue
            # affected_fields shape per record id is UNVERIFIED (Zoho: "changed fields", values on request)
            affected = [{i: changed[i]} for i in ids if i in changed]
            payload = {
                "server_time": int(self.clock.time() * 1000),
                "query_params": dict(parse_qsl(urlsplit(channel["notify_url"]).query)),
                "module": module,
                "resource_uri": self._resource_uri(module),
                "ids": list(ids),
                "affected_fields": affected,
                "operation": operation,
                "channel_id": channel["channel_id"],
                "token": channel["token"],
            }
            if channel["return_affected_field_values"] and operation == "update":
                payload["affected_values"] = [
                    {"record_id": i, "values": {f: _plain(self._records[module][i].get(f)) for f in changed[i]}}
                    for i in ids if i in changed
                ]
            self._outbox.append((channel["notify_url"], payload))
