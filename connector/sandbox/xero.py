"""A faithful Xero simulator: OAuth 2.0, /connections, Accounting API, rate limits and webhooks.

Served over real HTTP (see ``common.serve``) on the real paths, so a client only changes its base
URLs: ``/identity/connect/authorize`` (login.xero.com), ``/connect/token`` (identity.xero.com),
``/connections`` and ``/api.xro/2.0/...`` (api.xero.com). Behaviour follows Xero's OpenAPI specs
(https://github.com/XeroAPI/Xero-OpenAPI: OAS-ACC accounting, OAS-ID identity, OAS-WH webhooks) and
its pages; the section marks below name the topic and its page:

- §1 OAuth 2.0, tokens and /connections: https://developer.xero.com/documentation/guides/oauth2/auth-flow,
  https://developer.xero.com/faq/oauth2, scopes https://developer.xero.com/documentation/oauth2/scopes
- §2 request headers and §5 the Accounting API (endpoints, list parameters, envelope, dates, records):
  https://developer.xero.com/documentation/api/requests-and-responses and the OAS-ACC spec
- §3 rate limits: https://developer.xero.com/documentation/oauth2/limits
- §4 webhooks: https://developer.xero.com/documentation/webhooks/overview and
  https://developer.xero.com/documentation/webhooks/configuring-your-server
- §6 error responses: https://developer.xero.com/documentation/api/http-response-codes
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import requests
from werkzeug.wrappers import Request, Response

from connector.clock import Clock
from connector.json_codec import Verbatim, dumps_with_verbatim
from connector.sandbox.common import RequestRecord, SandboxApp

API_PREFIX = "/api.xro/2.0"
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
MAX_IDS_BEFORE_GATEWAY_404 = 52  # 53 GUIDs in IDs= gets a 404 from the gateway (§5.2)
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
AUTH_CODE_TTL = 300
REFRESH_TOKEN_IDLE_TTL = 60 * 86400  # unused refresh tokens die after 60 days (§1.5)
# Simple NZ-style rate table; the real one is per organisation (GET /TaxRates).
TAX_RATES = {
    "OUTPUT": Decimal(15), "OUTPUT2": Decimal(15), "INPUT": Decimal(15), "INPUT2": Decimal(15),
    "NONE": Decimal(0), "EXEMPTOUTPUT": Decimal(0), "EXEMPTINPUT": Decimal(0),
    "ZERORATEDOUTPUT": Decimal(0), "ZERORATEDINPUT": Decimal(0), "EXEMPTEXPENSES": Decimal(0),
}
ADDRESS_TYPES = ("STREET", "POBOX")
PHONE_TYPES = ("DEFAULT", "DDI", "FAX", "MOBILE")
CONTACT_TEXT_FIELDS = (
    "ContactNumber", "AccountNumber", "Name", "FirstName", "LastName", "CompanyNumber", "EmailAddress",
    "BankAccountDetails", "TaxNumber", "TaxNumberType", "AccountsReceivableTaxType",
    "AccountsPayableTaxType", "DefaultCurrency", "Website",
)
CONTACT_READ_ONLY = ("Website",)  # settable in Xero's UI only; the API ignores it on write (§5.5)
INVOICE_STATUS_MOVES = {  # allowed target statuses per current status
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": set(),
    "VOIDED": set(),
    "DELETED": set(),
}
LOCKED_BY_PAYMENT = "This document cannot be edited as it has a payment or credit note allocated to it."
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RATE_1 = Decimal("1.000000")
_CREATION_ORDER = itertools.count()  # lists filtered by id keep the order in which records were created


class XeroValidationError(ValueError):
    """A write the real API would refuse with a ValidationException; ``messages`` as Xero words them."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


# ---------------------------------------------------------------------------------------------
# formats


def cents(value) -> Decimal:
    return _dec(value).quantize(CENT, ROUND_HALF_UP)


def _dec(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


_DATE_VALUE = re.compile(r'(?<!\\)"(/Date\((?:[^"\\]|\\.)*)"(?!:)')  # a string value that starts /Date(


def _money(obj) -> Verbatim:
    if not isinstance(obj, Decimal):
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    return Verbatim(format(obj, "f"))


def to_json(value) -> str:
    """JSON the way Xero writes it: money keeps its decimals (40.00) and /Date()/ slashes are escaped.

    The C encoder writes the document with each Decimal's digits as they are (``dumps_with_verbatim``).
    Whenever that could differ from ``_to_json_exact`` (a string in the data taken for a Decimal's
    place; non-ASCII text, which that escapes in keys only) the exact encoder writes the document instead.
    """
    text = dumps_with_verbatim(value, _money, separators=(",", ":"), ensure_ascii=False)
    if text is None or not text.isascii():
        return _to_json_exact(value)
    return _DATE_VALUE.sub(lambda m: '"' + m.group(1).replace("/", "\\/") + '"', text)


def _to_json_exact(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_to_json_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_to_json_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str) and value.startswith("/Date("):
        return json.dumps(value).replace("/", "\\/")
    return json.dumps(value, ensure_ascii=False)


def ms_date(moment: datetime | date, *, with_offset: bool = True) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), timezone.utc)
    ms = math.floor(moment.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if with_offset else f"/Date({ms})/"


def _utc_string(moment: datetime) -> str:  # UpdatedDateUTCString, e.g. 2019-03-05T18:59:06Z
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_string(day: date) -> str:  # DateString, e.g. 2019-03-05T00:00:00
    return f"{day.isoformat()}T00:00:00"


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _from_ms_date(text: str) -> datetime | None:
    match = _MS_DATE.match(text)
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc) if match else None


def parse_body_date(value) -> date:
    """Request bodies carry ``YYYY-MM-DD``, ISO date-times or ``/Date(ms[+0000])/`` (§5.4)."""
    text = str(value).strip()
    moment = _from_ms_date(text)
    if moment is not None:
        return moment.date()
    return datetime.fromisoformat(text).date()


def parse_if_modified_since(value: str) -> datetime:
    """ISO-8601 with or without fraction/offset (naive means UTC), or an RFC-1123 HTTP date (§2)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        moment = parsedate_to_datetime(value)  # raises ValueError/TypeError when neither
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _connection_time(moment: datetime) -> str:  # 2019-12-07T18:46:19.5165400 (no Z), §1.6
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _page_and_size(args) -> tuple[int, int] | Response:
    """The requested page (from 1) and page size (1 to MAX_PAGE_SIZE), or Xero's 400 for a bad number."""
    try:
        page = max(int(args.get("page", 1)), 1)
        size = min(max(int(args.get("pageSize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
    except ValueError:
        return Response("Supplied parameter 'page' cannot be parsed.", status=400,
                        content_type="text/plain; charset=utf-8")
    return page, size


def _pagination(page: int, size: int, count: int) -> dict:
    return {"page": page, "pageSize": size, "pageCount": math.ceil(count / size), "itemCount": count}


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"  # PY sends True/False (§5.2)


# ---------------------------------------------------------------------------------------------
# `where` filters: Field==value, != > >= < <=, .Contains/.StartsWith/.EndsWith, &&/AND, ||/OR, !, ()

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|&&|\|\||[><().,!])|'
    r"(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


class WhereError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise WhereError(f"cannot parse where near {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _WhereParser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise WhereError(f"expected {value or 'more'} in where")
        self.i += 1
        return token

    def parse(self):
        node = self.or_expr()
        if self.peek() is not None:
            raise WhereError("trailing text in where")
        return node

    def or_expr(self):
        nodes = [self.and_expr()]
        while self.peek() and self.peek()[1] in ("||", "OR"):
            self.take()
            nodes.append(self.and_expr())
        return lambda item: any(n(item) for n in nodes)

    def and_expr(self):
        nodes = [self.term()]
        while self.peek() and self.peek()[1] in ("&&", "AND"):
            self.take()
            nodes.append(self.term())
        return lambda item: all(n(item) for n in nodes)

    def term(self):
        token = self.peek()
        if token and token[1] == "!":
            self.take()
            inner = self.term()
            return lambda item: not inner(item)
        if token and token[1] == "(":
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        path = [self.take()[1]]
        while self.peek() and self.peek()[1] == ".":
            self.take()
            path.append(self.take()[1])
        if path[-1] in ("Contains", "StartsWith", "EndsWith") and self.peek() and self.peek()[1] == "(":
            method, path = path[-1], path[:-1]
            self.take("(")
            needle = str(self.literal()).lower()
            self.take(")")
            test = {"Contains": str.__contains__, "StartsWith": str.startswith, "EndsWith": str.endswith}[method]
            return lambda item: (v := _lookup(item, path)) is not None and test(str(v).lower(), needle)
        op = self.take()[1]
        if op not in ("==", "!=", ">", ">=", "<", "<="):
            raise WhereError(f"unknown operator {op}")
        expected = self.literal()
        return lambda item: _compare(_lookup(item, path), op, expected)

    def literal(self):
        kind, value = self.take()
        if kind == "str":
            return json.loads(value)
        if kind == "num":
            return Decimal(value)
        if value in ("true", "false"):
            return value == "true"
        if value == "null":
            return None
        if value in ("Guid", "GUID"):
            self.take("(")
            guid = self.literal()
            self.take(")")
            return str(guid)
        if value == "DateTime":
            self.take("(")
            parts = [int(self.take()[1])]
            while self.peek() and self.peek()[1] == ",":
                self.take()
                parts.append(int(self.take()[1]))
            self.take(")")
            return datetime(*parts, tzinfo=timezone.utc)
        raise WhereError(f"unexpected {value} in where")


def _lookup(item: dict, path: list[str]):
    value = item
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, str):
        return _from_ms_date(value) or value
    return value


def _compare(actual, op: str, expected) -> bool:
    if expected is None or actual is None:
        same = (actual in (None, "")) == (expected is None) if expected is None else False
        return same if op == "==" else (not same if op == "!=" else False)
    if isinstance(expected, bool) or isinstance(actual, bool):
        actual, expected = bool(actual), bool(expected)
    elif isinstance(expected, Decimal):
        actual = _dec(actual)
    elif isinstance(expected, datetime):
        if not isinstance(actual, datetime):
            return False
    else:  # strings compare like Xero's case-insensitive collation
        actual, expected = str(actual).lower(), str(expected).lower()
    try:
        return {
            "==": actual == expected, "!=": actual != expected, ">": actual > expected,
            ">=": actual >= expected, "<": actual < expected, "<=": actual <= expected,
        }[op]
    except TypeError:
        return False


def parse_where(text: str):
    """Compile a Xero ``where`` expression into a predicate over the API representation."""
    return _WhereParser(text).parse()


# ---------------------------------------------------------------------------------------------
# state


@dataclass
class _Contact:
    id: str
    status: str
    fields: dict
    addresses: dict
    phones: dict
    persons: list
    updated: datetime
    groups: list = field(default_factory=list)
    created_order: int = field(default_factory=lambda: next(_CREATION_ORDER))


@dataclass
class _Document:
    """An invoice or a credit note (they share line items and totals)."""

    id: str
    type: str
    number: str
    contact_id: str
    status: str
    line_amount_types: str
    date: date
    updated: datetime
    due_date: date | None = None
    reference: str = ""
    currency: str = "NZD"
    line_items: list = field(default_factory=list)
    sub_total: Decimal = ZERO
    total_tax: Decimal = ZERO
    total: Decimal = ZERO
    total_discount: Decimal = ZERO
    amount_paid: Decimal = ZERO
    amount_credited: Decimal = ZERO
    fully_paid_on: date | None = None
    sent_to_contact: bool = False
    created_order: int = field(default_factory=lambda: next(_CREATION_ORDER))

    @property
    def is_credit_note(self) -> bool:
        return self.type.endswith("CREDIT")

    @property
    def amount_due(self) -> Decimal:
        return self.total - self.amount_paid - self.amount_credited


@dataclass
class _Payment:
    id: str
    invoice_id: str
    account_code: str
    amount: Decimal
    date: date
    reference: str
    status: str
    updated: datetime


@dataclass
class _Allocation:
    id: str
    credit_note_id: str
    invoice_id: str
    amount: Decimal
    date: date


@dataclass
class _Org:
    id: str
    name: str
    day_limit: int
    created: datetime
    currency: str = "NZD"
    contacts: dict = field(default_factory=dict)
    # Indexes for the uniqueness checks, so an org of tens of thousands of contacts is seeded in seconds.
    contacts_by_name: dict = field(default_factory=dict)  # lower-case Name of ACTIVE contacts -> ids
    contacts_by_number: dict = field(default_factory=dict)  # ContactNumber -> ids
    invoices: dict = field(default_factory=dict)
    credit_notes: dict = field(default_factory=dict)
    # A contact's invoices and credit notes (ids), and documents by lower-case number: rendering a
    # contact's balances, listing by ContactIDs and checking a number's uniqueness scan nothing.
    documents_by_contact: dict = field(default_factory=dict)
    documents_by_number: dict = field(default_factory=dict)  # ("invoices"|"credit_notes", number) -> ids
    payments: dict = field(default_factory=dict)
    allocations: list = field(default_factory=list)
    next_invoice_number: int = 1
    next_credit_note_number: int = 1


def _index_contact(org: _Org, contact, *, add: bool) -> None:
    keys = [(org.contacts_by_number, contact.fields.get("ContactNumber"))]
    if contact.status == "ACTIVE":
        keys.append((org.contacts_by_name, contact.fields.get("Name", "").lower()))
    for index, key in keys:
        if key:
            ids = index.setdefault(key, set())
            ids.add(contact.id) if add else ids.discard(contact.id)


@dataclass
class _Grant:
    id: str  # authEventId
    tenant_ids: list
    scope: str
    revoked: bool = False


@dataclass
class _RefreshToken:
    grant: _Grant
    issued: float
    rotated_at: float | None = None
    successor: str | None = None


@dataclass
class _AccessToken:
    grant: _Grant
    expires: float


@dataclass
class _Connection:
    id: str
    auth_event_id: str
    tenant_id: str
    created: datetime
    updated: datetime


@dataclass
class _Budget:
    """Fixed windows per tenant, offset randomly like Xero's (§3.1)."""

    minute_offset: float
    day_offset: float
    minute_window: int = -1
    minute_count: int = 0
    day_window: int = -1
    day_count: int = 0
    in_flight: int = 0


@dataclass
class ITRProbe:
    correctly_signed: bool
    status: int
    body: bytes
    set_cookie: bool


@dataclass
class ITRResult:
    ok: bool
    probes: list[ITRProbe]
    problems: list[str]


class _ApiResponse(Exception):
    """Raised inside handlers to answer early with a finished response."""

    def __init__(self, response: Response) -> None:
        self.response = response


# ---------------------------------------------------------------------------------------------


class XeroSandbox(SandboxApp):
    name = "xero"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        client_id: str = "sandbox-xero-client",
        client_secret: str = "sandbox-xero-secret",
        webhook_key: str = "sandbox-xero-webhook-key",
        minute_limit: int = 60,
        day_limit: int = 5000,
        concurrent_limit: int = 5,
        app_minute_limit: int = 10000,
        access_token_ttl: int = 1800,
        refresh_grace: int = 1800,
        provider_name: str = "ml-connector sandbox",
        seed: int | None = None,
    ) -> None:
        super().__init__(clock)
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_key = webhook_key
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        self.access_token_ttl = access_token_ttl
        self.refresh_grace = refresh_grace
        self.provider_name = provider_name
        # Seconds each accepted accounting call stays "in flight" (real sleep): lets tests overlap calls.
        self.latency = 0.0
        # Whether applying a payment/allocation also queues an INVOICE UPDATE event (UNVERIFIED, §4.1).
        self.invoice_event_on_payment = False
        self._lock = threading.RLock()
        self._rate_lock = threading.Lock()
        self._random = random.Random(seed)  # window offsets, entropy, ITR order: fixed by ``seed``
        self._orgs: dict[str, _Org] = {}
        self._budgets: dict[str, _Budget] = {}
        self._app_window = (-1, 0)
        self._codes: dict[str, dict] = {}
        self._grants: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._connections: dict[str, _Connection] = {}
        self._idempotent: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._events: list[dict] = []
        self._event_sequence = 0

    # ------------------------------------------------------------------ hooks for tests and demo

    def add_tenant(self, name: str, *, day_limit: int | None = None) -> str:
        tenant_id = str(uuid.uuid4())
        with self._lock:
            self._orgs[tenant_id] = _Org(tenant_id, name, day_limit or self.day_limit, self.clock.now())
        with self._rate_lock:
            self._budgets[tenant_id] = _Budget(self._random.uniform(0, 60), self._random.uniform(0, 86400))
        return tenant_id

    def issue_grant(
        self, tenant_ids: list[str] | None = None, scope: str = "offline_access accounting.contacts accounting.transactions"
    ) -> dict:
        """A token response as if a user had consented to ``tenant_ids`` (default: every tenant)."""
        with self._lock:
            grant = _Grant(str(uuid.uuid4()), list(self._orgs if tenant_ids is None else tenant_ids), scope)
            self._grants[grant.id] = grant
            self._connect(grant)
            return self._token_response(grant)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant behind a refresh token and remove its connections (§1.1)."""
        with self._lock:
            state = self._refresh_tokens.get(refresh_token)
            if state is None:
                return
            state.grant.revoked = True
            for conn_id in [c.id for c in self._connections.values() if c.tenant_id in state.grant.tenant_ids]:
                del self._connections[conn_id]

    def expire_access_tokens(self) -> None:
        with self._lock:
            now = self.clock.time()
            for token in self._access_tokens.values():
                token.expires = min(token.expires, now)

    def set_day_limit(self, tenant_id: str, day_limit: int) -> None:
        with self._lock:
            self._orgs[tenant_id].day_limit = day_limit

    def spend_day_calls(self, tenant_id: str, calls: int) -> None:
        """Count ``calls`` against the tenant's current day window, as if made earlier today: Xero's
        daily budget is per app and tenant (§3.1), so e.g. a redeployed worker starts part-spent."""
        now = self.clock.time()
        with self._rate_lock:
            budget = self._budgets[tenant_id]
            day = math.floor((now - budget.day_offset) / 86400)
            if budget.day_window != day:
                budget.day_window, budget.day_count = day, 0
            budget.day_count += calls

    # ------------------------------------------------------------------ Python data API

    def create_contact(self, tenant_id: str, **fields) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            contact = self._raise_on_errors(self._save_contact(org, fields, create_only=True))
            return self._render_contact(org, contact)

    def update_contact(self, tenant_id: str, contact_id: str, **changes) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            contact = self._raise_on_errors(self._save_contact(org, {**changes, "ContactID": contact_id}))
            return self._render_contact(org, contact)

    def archive_contact(self, tenant_id: str, contact_id: str) -> dict:
        return self.update_contact(tenant_id, contact_id, ContactStatus="ARCHIVED")

    def contact(self, tenant_id: str, contact_id: str) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            return self._render_contact(org, org.contacts[contact_id])

    def contacts(self, tenant_id: str) -> list[dict]:
        with self._lock:
            org = self._orgs[tenant_id]
            return [self._render_contact(org, c) for c in org.contacts.values()]

    def invoices(self, tenant_id: str) -> list[dict]:
        with self._lock:
            org = self._orgs[tenant_id]
            return [self._render_document(org, d) for d in org.invoices.values()]

    def create_invoice(self, tenant_id: str, contact_id: str, line_items: list[dict], **fields) -> dict:
        """Defaults to an AUTHORISED sales invoice (the HTTP API defaults to DRAFT)."""
        element = {"Type": "ACCREC", "Status": "AUTHORISED", **fields,
                   "Contact": {"ContactID": contact_id}, "LineItems": line_items}
        with self._lock:
            org = self._orgs[tenant_id]
            doc = self._raise_on_errors(self._save_document(org, element, credit_note=False, create_only=True))
            return self._render_document(org, doc)

    def update_invoice(self, tenant_id: str, invoice_id: str, **changes) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            doc = self._raise_on_errors(
                self._save_document(org, {**changes, "InvoiceID": invoice_id}, credit_note=False)
            )
            return self._render_document(org, doc)

    def void_invoice(self, tenant_id: str, invoice_id: str) -> dict:
        return self.update_invoice(tenant_id, invoice_id, Status="VOIDED")

    def invoice(self, tenant_id: str, invoice_id: str) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            return self._render_document(org, org.invoices[invoice_id])

    def add_payment(self, tenant_id: str, invoice_id: str, amount, date: date | str | None = None) -> dict:
        element = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": amount}
        if date is not None:
            element["Date"] = date.isoformat() if hasattr(date, "isoformat") else date
        with self._lock:
            org = self._orgs[tenant_id]
            payment = self._raise_on_errors(self._save_payment(org, element))
            return self._render_payment(org, payment)

    def reverse_payment(self, tenant_id: str, payment_id: str) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            payment = self._raise_on_errors(self._delete_payment(org, payment_id))
            return self._render_payment(org, payment)

    def payment(self, tenant_id: str, payment_id: str) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            return self._render_payment(org, org.payments[payment_id])

    def create_credit_note(self, tenant_id: str, contact_id: str, line_items: list[dict], **fields) -> dict:
        element = {"Type": "ACCRECCREDIT", "Status": "AUTHORISED", **fields,
                   "Contact": {"ContactID": contact_id}, "LineItems": line_items}
        with self._lock:
            org = self._orgs[tenant_id]
            doc = self._raise_on_errors(self._save_document(org, element, credit_note=True, create_only=True))
            return self._render_document(org, doc)

    def allocate_credit_note(
        self, tenant_id: str, credit_note_id: str, invoice_id: str, amount, date: date | None = None
    ) -> dict:
        element = {"Invoice": {"InvoiceID": invoice_id}, "Amount": amount}
        if date is not None:
            element["Date"] = date.isoformat()
        with self._lock:
            org = self._orgs[tenant_id]
            allocation = self._raise_on_errors(self._allocate(org, credit_note_id, element))
            return self._render_allocation(org, allocation)

    def credit_note(self, tenant_id: str, credit_note_id: str) -> dict:
        with self._lock:
            org = self._orgs[tenant_id]
            return self._render_document(org, org.credit_notes[credit_note_id])

    @staticmethod
    def _raise_on_errors(result):
        value, errors = result
        if errors:
            raise XeroValidationError(errors)
        return value

    # ------------------------------------------------------------------ webhooks (§4)

    def pending_events(self) -> list[dict]:
        with self._lock:
            return [self._event_payload(e) for e in self._events]

    def _event_payload(self, event: dict) -> dict:
        plural = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}[event["eventCategory"]]
        base = self.base_url or "https://api.xero.com"
        payload = {
            "resourceUrl": f"{base}{API_PREFIX}/{plural}/{event['resourceId']}",
            **{k: v for k, v in event.items() if k != "sequence"},
        }
        return payload

    def webhook_body(self, events: list[dict], *, entropy: str | None = None) -> bytes:
        sequences = [e.get("sequence", 0) for e in events] or [0]
        body = {
            "events": [{k: v for k, v in e.items() if k != "sequence"} for e in events],
            "firstEventSequence": min(sequences),
            "lastEventSequence": max(sequences),
            "entropy": entropy or _entropy(self._random),
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def sign(self, body: bytes) -> str:
        return base64.b64encode(hmac.new(self.webhook_key.encode("utf-8"), body, hashlib.sha256).digest()).decode()

    def deliver_webhooks(
        self, url: str, *, max_events_per_post: int = 20, bad_signature: bool = False, timeout: float = 5.0
    ) -> list[int]:
        """POST pending events in batches; each batch is dropped only once answered 200 (§4.5).

        Stops at the first failed batch, leaving it and the rest pending for redelivery. A status
        of 0 means no HTTP answer (connection error or timeout).
        """
        statuses: list[int] = []
        while True:
            with self._lock:
                batch = self._events[:max_events_per_post]
                if not batch:
                    return statuses
                payload = [{**self._event_payload(e), "sequence": e["sequence"]} for e in batch]
            body = self.webhook_body(payload)
            status = self._post_webhook(url, body, self._bad_sign(body) if bad_signature else self.sign(body), timeout)
            statuses.append(status)
            if status != 200:
                return statuses
            with self._lock:
                delivered = {e["sequence"] for e in batch}
                self._events = [e for e in self._events if e["sequence"] not in delivered]

    def intent_to_receive(self, url: str, *, probes: int = 4, timeout: float = 5.0) -> ITRResult:
        """Xero's ITR check (§4.4): empty-events probes, some signed right and some wrong."""
        signed_right = [i % 2 == 0 for i in range(max(probes, 2))]
        self._random.shuffle(signed_right)
        results: list[ITRProbe] = []
        problems: list[str] = []
        for correct in signed_right:
            # Xero's own ITR bodies are not canonical JSON: keep that spacing so receivers must hash raw bytes.
            body = (
                '{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "%s"}'
                % _entropy(self._random)
            ).encode()
            signature = self.sign(body) if correct else self._bad_sign(body)
            try:
                answer = requests.post(url, data=body, headers=_webhook_headers(signature), timeout=timeout)
                probe = ITRProbe(correct, answer.status_code, answer.content, "set-cookie" in answer.headers)
            except requests.RequestException:
                probe = ITRProbe(correct, 0, b"", False)
            results.append(probe)
            if correct and probe.status != 200:
                problems.append(f"Response to correctly signed payload not 200 (got {probe.status})")
            if not correct and probe.status != 401:
                problems.append(f"Response to incorrectly signed payload not 401 (got {probe.status})")
            if probe.body:
                problems.append("Response body was not empty")
            if probe.set_cookie:
                problems.append("Response set a cookie")
        return ITRResult(not problems, results, problems)

    def _bad_sign(self, body: bytes) -> str:
        return base64.b64encode(hmac.new(b"not-the-webhook-key", body, hashlib.sha256).digest()).decode()

    @staticmethod
    def _post_webhook(url: str, body: bytes, signature: str, timeout: float) -> int:
        try:
            return requests.post(url, data=body, headers=_webhook_headers(signature), timeout=timeout).status_code
        except requests.RequestException:
            return 0

    def _queue_event(self, org: _Org, category: str, resource_id: str, event_type: str, data: dict | None = None):
        self._event_sequence += 1
        moment = self.clock.now()
        event = {
            "resourceId": resource_id,
            "eventDateUtc": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": org.id,
            "tenantType": "ORGANISATION",
            "sequence": self._event_sequence,
        }
        if data is not None:
            event["data"] = data
        self._events.append(event)

    # ------------------------------------------------------------------ WSGI

    def tenant_of(self, request: Request) -> str | None:
        return request.headers.get("xero-tenant-id")  # werkzeug headers are case-insensitive

    def __call__(self, environ, start_response):
        try:
            return super().__call__(environ, start_response)
        finally:
            # Freed only after the base class stamped ``finished``, so the log never under-reports overlap.
            tenant_id = environ.get("xero_sandbox.slot")
            if tenant_id is not None:
                with self._rate_lock:
                    self._budgets[tenant_id].in_flight -= 1

    def handle(self, request: Request, record: RequestRecord) -> Response:
        path = request.path
        try:
            if path == "/identity/connect/authorize" and request.method == "GET":
                return self._authorize(request)
            if path == "/connect/token" and request.method == "POST":
                return self._token(request)
            if path == "/connect/revocation" and request.method == "POST":
                return self._revocation(request)
            if path.lower().startswith("/connections"):
                return self._connections_endpoint(request)
            if path.startswith(API_PREFIX + "/"):
                return self._accounting(request, record)
        except _ApiResponse as answer:
            return answer.response
        return Response(NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")

    # ------------------------------------------------------------------ OAuth 2.0 (§1)

    def _authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id:
            return Response("unauthorized_client", status=400, content_type="text/plain")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            return Response("invalid redirect_uri", status=400, content_type="text/plain")
        state = {"state": args["state"]} if "state" in args else {}
        if args.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", **state})
        if not args.get("scope"):
            return _redirect(redirect_uri, {"error": "invalid_scope", **state})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "scope": args["scope"],
                "expires": self.clock.time() + AUTH_CODE_TTL,
                "code_challenge": args.get("code_challenge"),
            }
        return _redirect(redirect_uri, {"code": code, **state})

    def _client_credentials(self, request: Request) -> tuple[str | None, str | None]:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username, auth.password
        return request.form.get("client_id"), request.form.get("client_secret")

    def _token(self, request: Request) -> Response:
        client_id, secret = self._client_credentials(request)
        form = request.form
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                pkce_ok = bool(code and code["code_challenge"] and form.get("code_verifier")
                               and _s256(form["code_verifier"]) == code["code_challenge"])
                if client_id != self.client_id or (secret != self.client_secret and not pkce_ok):
                    return json_error({"error": "invalid_client"})
                if (code is None or code["expires"] < self.clock.time()
                        or code["redirect_uri"] != form.get("redirect_uri")
                        or (code["code_challenge"] and not pkce_ok)):
                    return json_error({"error": "invalid_grant"})
                grant = _Grant(str(uuid.uuid4()), list(self._orgs), code["scope"])
                self._grants[grant.id] = grant
                self._connect(grant)
                return _token_json(self._token_response(grant))
            if client_id != self.client_id or secret != self.client_secret:
                return json_error({"error": "invalid_client"})
            if grant_type == "refresh_token":
                response = self._refresh(form.get("refresh_token", ""))
                return _token_json(response) if response else json_error({"error": "invalid_grant"})
        return json_error({"error": "unsupported_grant_type"})

    def _refresh(self, refresh_token: str) -> dict | None:
        """Rotate on every use; the used token stays valid for ``refresh_grace`` seconds (§1.5)."""
        now = self.clock.time()
        state = self._refresh_tokens.get(refresh_token)
        if state is None or state.grant.revoked or now - state.issued > REFRESH_TOKEN_IDLE_TTL:
            return None
        if state.rotated_at is None:
            response = self._token_response(state.grant)
            state.rotated_at, state.successor = now, response["refresh_token"]
            return response
        if now - state.rotated_at <= self.refresh_grace:
            # A retry after a lost response: same family, hand back the successor with a fresh access token.
            return self._token_response(state.grant, refresh_token=state.successor)
        return None

    def _token_response(self, grant: _Grant, *, refresh_token: str | None = None) -> dict:
        now = self.clock.time()
        access_token = secrets.token_urlsafe(32)
        self._access_tokens[access_token] = _AccessToken(grant, now + self.access_token_ttl)
        scopes = grant.scope.split()
        response = {}
        if "openid" in scopes:
            response["id_token"] = _fake_id_token(self.client_id, now)
        response.update(access_token=access_token, expires_in=self.access_token_ttl, token_type="Bearer")
        if "offline_access" in scopes:  # no refresh token without offline_access (§1.3)
            if refresh_token is None:
                refresh_token = secrets.token_hex(32)
                self._refresh_tokens[refresh_token] = _RefreshToken(grant, now)
            response["refresh_token"] = refresh_token
        response["scope"] = grant.scope
        return response

    def _revocation(self, request: Request) -> Response:
        client_id, secret = self._client_credentials(request)
        if client_id != self.client_id or secret != self.client_secret:
            return json_error({"error": "invalid_client"})
        self.revoke(request.form.get("token", ""))
        return Response("", status=200)

    def _connect(self, grant: _Grant) -> None:
        now = self.clock.now()
        for tenant_id in grant.tenant_ids:
            existing = next((c for c in self._connections.values() if c.tenant_id == tenant_id), None)
            if existing:  # re-consent keeps the connection and records the new auth event
                existing.auth_event_id, existing.updated = grant.id, now
            else:
                conn = _Connection(str(uuid.uuid4()), grant.id, tenant_id, now, now)
                self._connections[conn.id] = conn

    def _bearer(self, request: Request) -> _Grant:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self._lock:
            state = self._access_tokens.get(token)
        now = self.clock.time()
        if state is None or state.grant.revoked:
            raise _ApiResponse(problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
        if state.expires <= now:
            expired = datetime.fromtimestamp(state.expires, timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
            raise _ApiResponse(problem(401, "Unauthorized", f"TokenExpired: token expired at {expired}"))
        return state.grant

    def _connected_tenants(self, grant: _Grant) -> set[str]:
        with self._lock:
            live = {c.tenant_id for c in self._connections.values()}
        return live & set(grant.tenant_ids)

    def _connections_endpoint(self, request: Request) -> Response:
        grant = self._bearer(request)
        tenants = self._connected_tenants(grant)
        parts = request.path.strip("/").split("/")
        with self._lock:
            if request.method == "DELETE" and len(parts) == 2:
                conn = self._connections.get(parts[1])
                if conn is None or conn.tenant_id not in tenants:
                    return Response(NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")
                del self._connections[conn.id]
                return Response(status=204)
            if request.method != "GET" or len(parts) != 1:
                return Response(NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")
            auth_event = request.args.get("authEventId")
            rows = [
                {
                    "id": c.id,
                    "authEventId": c.auth_event_id,
                    "tenantId": c.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": self._orgs[c.tenant_id].name,
                    "createdDateUtc": _connection_time(c.created),
                    "updatedDateUtc": _connection_time(c.updated),
                }
                for c in self._connections.values()
                if c.tenant_id in tenants and (auth_event is None or c.auth_event_id == auth_event)
            ]
        return Response(json.dumps(rows), content_type="application/json; charset=utf-8")

    # ------------------------------------------------------------------ rate limits (§3)

    def _admit(self, tenant_id: str) -> tuple[str | None, int]:
        """Count one call or name the breached limit with its Retry-After. Rejections are free."""
        now = self.clock.time()
        with self._rate_lock:
            budget = self._budgets[tenant_id]
            minute = math.floor((now - budget.minute_offset) / 60)
            day = math.floor((now - budget.day_offset) / 86400)
            if budget.minute_window != minute:
                budget.minute_window, budget.minute_count = minute, 0
            if budget.day_window != day:
                budget.day_window, budget.day_count = day, 0
            app_minute = math.floor(now / 60)
            if self._app_window[0] != app_minute:
                self._app_window = (app_minute, 0)
            if budget.day_count >= self._orgs[tenant_id].day_limit:
                return "day", _seconds_until((day + 1) * 86400 + budget.day_offset, now)
            if budget.minute_count >= self.minute_limit:
                return "minute", _seconds_until((minute + 1) * 60 + budget.minute_offset, now)
            if self._app_window[1] >= self.app_minute_limit:
                return "appminute", _seconds_until((app_minute + 1) * 60, now)
            if budget.in_flight >= self.concurrent_limit:
                return "concurrent", 1
            budget.minute_count += 1
            budget.day_count += 1
            budget.in_flight += 1
            self._app_window = (app_minute, self._app_window[1] + 1)
            return None, 0

    def _limit_headers(self, tenant_id: str | None) -> dict:
        with self._rate_lock:
            budget = self._budgets.get(tenant_id) if tenant_id else None
            now = self.clock.time()
            app_used = self._app_window[1] if self._app_window[0] == math.floor(now / 60) else 0
            minute_used = day_used = 0
            day_limit = self.day_limit
            if budget is not None:
                day_limit = self._orgs[tenant_id].day_limit
                if budget.minute_window == math.floor((now - budget.minute_offset) / 60):
                    minute_used = budget.minute_count
                if budget.day_window == math.floor((now - budget.day_offset) / 86400):
                    day_used = budget.day_count
        return {
            "X-DayLimit-Remaining": str(max(day_limit - day_used, 0)),
            "X-MinLimit-Remaining": str(max(self.minute_limit - minute_used, 0)),
            "X-AppMinLimit-Remaining": str(max(self.app_minute_limit - app_used, 0)),
        }

    # ------------------------------------------------------------------ Accounting API (§5)

    def _accounting(self, request: Request, record: RequestRecord) -> Response:
        tenant_id = request.headers.get("xero-tenant-id")
        try:
            response = self._accounting_call(request, record, tenant_id)
        except _ApiResponse as answer:
            response = answer.response
        known = tenant_id if tenant_id in self._budgets else None
        response.headers.update(self._limit_headers(known))
        response.headers["Xero-Correlation-Id"] = str(uuid.uuid4())
        response.headers["Cache-Control"] = "max-age=0, no-cache, no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def _accounting_call(self, request: Request, record: RequestRecord, tenant_id: str | None) -> Response:
        grant = self._bearer(request)
        if not tenant_id or tenant_id not in self._connected_tenants(grant) or tenant_id not in self._orgs:
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        problem_name, retry_after = self._admit(tenant_id)
        if problem_name:
            return Response("", status=429, headers={"X-Rate-Limit-Problem": problem_name,
                                                     "Retry-After": str(retry_after)})
        request.environ["xero_sandbox.slot"] = tenant_id
        record.started = self.clock.time()  # the call is in flight from here on
        if self.latency:
            threading.Event().wait(self.latency)
        resource, _, rest = request.path[len(API_PREFIX) + 1:].partition("/")
        resource = resource.lower()
        if resource not in ("contacts", "invoices", "payments", "creditnotes"):
            return not_found()
        self._check_scope(grant, resource, request.method)
        if request.method == "GET":
            with self._lock:
                return self._read(self._orgs[tenant_id], resource, rest, request)
        if request.method not in ("PUT", "POST"):
            return not_found()
        key = request.headers.get("Idempotency-Key")
        if key is not None and len(key) > 128:
            return validation_error([], message="Idempotency-Key must be 128 characters or fewer")
        with self._lock:
            if key is not None and (tenant_id, key) in self._idempotent:
                status, body = self._idempotent[(tenant_id, key)]
                return Response(body, status=status, content_type="application/json; charset=utf-8")
            response = self._write(self._orgs[tenant_id], resource, rest, request)
            if key is not None:
                self._idempotent[(tenant_id, key)] = (response.status_code, response.get_data())
            return response

    def _check_scope(self, grant: _Grant, resource: str, method: str) -> None:
        """Broad or granular scopes (§1.7); a missing one is 401 AuthorizationUnsuccessful."""
        family = {"contacts": ["accounting.contacts"],
                  "invoices": ["accounting.transactions", "accounting.invoices"],
                  "creditnotes": ["accounting.transactions", "accounting.invoices"],
                  "payments": ["accounting.transactions", "accounting.payments"]}[resource]
        accepted = set(family) | ({f"{s}.read" for s in family} if method == "GET" else set())
        if not accepted & set(grant.scope.split()):
            raise _ApiResponse(problem(401, "Unauthorized", "AuthorizationUnsuccessful"))

    def _envelope(self, plural: str, items: list, pagination: dict | None = None) -> dict:
        body = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": self.provider_name,
            "DateTimeUTC": ms_date(self.clock.now(), with_offset=False),
        }
        if pagination is not None:
            body["pagination"] = pagination
        body[plural] = items
        return body

    # reads

    def _read(self, org: _Org, resource: str, rest: str, request: Request) -> Response:
        plural, by_id, render, key_field = {
            "contacts": ("Contacts", org.contacts, self._render_contact, "ContactNumber"),
            "invoices": ("Invoices", org.invoices, self._render_document, "InvoiceNumber"),
            "creditnotes": ("CreditNotes", org.credit_notes, self._render_document, "CreditNoteNumber"),
            "payments": ("Payments", org.payments, self._render_payment, None),
        }[resource]
        if rest:
            item = by_id.get(rest)
            if item is None and key_field:  # /Contacts/{ContactNumber}, /Invoices/{InvoiceNumber}
                if resource == "contacts":
                    holders = [org.contacts[i] for i in org.contacts_by_number.get(rest, ())]
                else:
                    holders = _numbered(org, "invoices" if resource == "invoices" else "credit_notes", rest)
                item = min(holders, key=lambda x: x.created_order, default=None)
            if item is None or "/" in rest:
                return not_found()
            return json_ok(self._envelope(plural, [render(org, item)]))
        args = request.args
        matches: set[str] | None = None  # ids the IDs/ContactIDs filters leave; None: no such filter
        id_filters = {"contacts": ["IDs"], "invoices": ["IDs", "ContactIDs"], "creditnotes": [], "payments": []}[resource]
        for param in id_filters:
            if param in args:
                wanted = [v.strip() for v in args[param].split(",") if v.strip()]
                if len(wanted) > MAX_IDS_BEFORE_GATEWAY_404:
                    return not_found()  # the gateway's misleading answer to a long IDs list (§5.2)
                if not all(_is_guid(v) for v in wanted):
                    return Response(f"Supplied parameter '{param}' cannot be parsed - must be of type UUID.",
                                    status=400, content_type="text/plain; charset=utf-8")
                wanted_set = {v.lower() for v in wanted}
                if param == "IDs":
                    found = {v for v in wanted_set if v in by_id}
                else:
                    found = {d for c in wanted_set for d in org.documents_by_contact.get(c, ()) if d in by_id}
                matches = found if matches is None else matches & found
        if matches is None:
            records = list(by_id.values())
        else:
            records = sorted((by_id[i] for i in matches), key=lambda r: r.created_order)
        if resource == "contacts" and not _truthy(args.get("includeArchived")) and "IDs" not in args:
            records = [r for r in records if r.status != "ARCHIVED"]
        if resource == "invoices":
            if "InvoiceNumbers" in args:
                numbers = {v.strip().lower() for v in args["InvoiceNumbers"].split(",")}
                records = [r for r in records if r.number.lower() in numbers]
            if "Statuses" in args:
                statuses = {v.strip().upper() for v in args["Statuses"].split(",")}
                records = [r for r in records if r.status in statuses]
        if "If-Modified-Since" in request.headers:
            try:
                since = parse_if_modified_since(request.headers["If-Modified-Since"])
            except (ValueError, TypeError):
                return Response("Supplied header 'If-Modified-Since' cannot be parsed.", status=400,
                                content_type="text/plain; charset=utf-8")
            # Accurate to the second (RR): a change within the same second as the stamp is not "after" it.
            records = [r for r in records if r.updated.replace(microsecond=0) > since.replace(microsecond=0)]
        by_update = re.fullmatch(r"\s*UpdatedDateUTC(\s+(ASC|DESC))?\s*", args.get("order") or "", re.IGNORECASE)
        if by_update and "page" in args and not args.get("searchTerm") and not args.get("where"):
            # Same answer as below, but only the requested page is rendered: an org of tens of
            # thousands of records is listed page by page in milliseconds.
            records = sorted(records, key=lambda r: int(r.updated.timestamp() * 1000),
                             reverse=(by_update.group(2) or "").upper() == "DESC")
            paging = _page_and_size(args)
            if isinstance(paging, Response):
                return paging
            page, size = paging
            count = len(records)
            rendered = [render(org, r) for r in records[(page - 1) * size: page * size]]
            if _truthy(args.get("summaryOnly")):
                drop = {"Balances"} if resource == "contacts" else {"LineItems"}
                rendered = [{k: v for k, v in r.items() if k not in drop} for r in rendered]
            pagination = _pagination(page, size, count)
            return json_ok(self._envelope(plural, rendered, pagination))
        rendered = [render(org, r) for r in records]
        if args.get("searchTerm"):
            term = args["searchTerm"].lower()
            fields = {"contacts": ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"),
                      "invoices": ("InvoiceNumber", "Reference")}.get(resource, ())
            rendered = [r for r in rendered if any(term in str(r.get(f, "")).lower() for f in fields)]
        if args.get("where"):
            try:
                predicate = parse_where(args["where"])
            except WhereError as exc:
                return Response(str(exc), status=400, content_type="text/plain; charset=utf-8")
            rendered = [r for r in rendered if predicate(r)]
        if args.get("order"):
            rendered = _order(rendered, args["order"])
        drop = set()
        if _truthy(args.get("summaryOnly")):  # which fields go is UNVERIFIED; the computed ones here
            drop = {"Balances"} if resource == "contacts" else {"LineItems"}
        if "page" not in args and resource in ("invoices", "creditnotes"):
            drop.add("LineItems")  # unpaged invoice lists omit line items (xero-node#270): always pass page
        if drop:
            rendered = [{k: v for k, v in r.items() if k not in drop} for r in rendered]
        pagination = None
        if "page" in args or "pageSize" in args:
            paging = _page_and_size(args)
            if isinstance(paging, Response):
                return paging
            page, size = paging
            count = len(rendered)
            pagination = _pagination(page, size, count)
            rendered = rendered[(page - 1) * size: page * size]
        return json_ok(self._envelope(plural, rendered, pagination))

    # writes

    def _write(self, org: _Org, resource: str, rest: str, request: Request) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}", parse_float=Decimal)
        except ValueError:
            return json_error({"ErrorNumber": 14, "Type": "PostDataInvalidException",
                               "Message": "JSON for post data was invalid"})
        parts = rest.split("/") if rest else []
        plural = {"contacts": "Contacts", "invoices": "Invoices", "payments": "Payments",
                  "creditnotes": "CreditNotes"}[resource]
        if resource == "creditnotes" and len(parts) == 2 and parts[1].lower() == "allocations":
            if request.method != "PUT" or parts[0] not in org.credit_notes:
                return not_found()
            elements = body.get("Allocations", [body]) if isinstance(body, dict) else body
            results = [self._allocate(org, parts[0], e) for e in elements]
            return self._write_response(org, request, "Allocations", elements, results, self._render_allocation)
        if len(parts) > 1:
            return not_found()
        elements = body.get(plural, [body]) if isinstance(body, dict) else body
        path_id = parts[0] if parts else None
        if path_id is not None and request.method == "PUT":
            return not_found()
        results = []
        for element in elements:
            if resource == "contacts":
                if path_id:
                    element = {**element, "ContactID": path_id}
                results.append(self._save_contact(org, element, create_only=request.method == "PUT", via_api=True))
            elif resource in ("invoices", "creditnotes"):
                id_key = "InvoiceID" if resource == "invoices" else "CreditNoteID"
                if path_id:
                    element = {**element, id_key: path_id}
                results.append(self._save_document(org, element, credit_note=resource == "creditnotes",
                                                   create_only=request.method == "PUT"))
            elif path_id:  # POST /Payments/{id} only deletes (§5.1)
                if path_id not in org.payments:
                    return not_found()
                if str(element.get("Status", "")).upper() != "DELETED":
                    results.append((None, ["Payments can only be deleted, by setting Status to DELETED"]))
                else:
                    results.append(self._delete_payment(org, path_id))
            else:
                results.append(self._save_payment(org, element))
        render = {"contacts": self._render_contact, "payments": self._render_payment}.get(
            resource, self._render_document)
        return self._write_response(org, request, plural, elements, results, render)

    def _write_response(self, org, request, plural, elements, results, render) -> Response:
        """summarizeErrors defaults to true: any failure → 400 listing the failures only (§5.8)."""
        summarize = request.args.get("summarizeErrors", "true").strip().lower() != "false"
        failures = [(e, errors) for e, (_, errors) in zip(elements, results) if errors]
        if failures and summarize:
            return validation_error([_with_errors(e, errs) for e, errs in failures])
        items = []
        for element, (value, errors) in zip(elements, results):
            if errors:
                items.append({**_with_errors(element, errors), "StatusAttributeString": "ERROR"})
            else:
                rendered = render(org, value)
                if not summarize:
                    rendered = {**rendered, "StatusAttributeString": "OK"}
                items.append(rendered)
        return json_ok(self._envelope(plural, items))

    # ------------------------------------------------------------------ contacts

    def _save_contact(self, org: _Org, element: dict, *, create_only: bool = False,
                      via_api: bool = False) -> tuple[_Contact | None, list[str]]:
        """``via_api``: sent over HTTP, where Xero ignores read-only elements (Website is read-only in the
        Contacts API, §5.5; people set it in Xero's UI, which the Python hooks stand for)."""
        if via_api:
            element = {k: v for k, v in element.items() if k not in CONTACT_READ_ONLY}
        contact_id = element.get("ContactID")
        existing = org.contacts.get(contact_id) if contact_id else None
        if contact_id and existing is None:
            return None, [f"Contact with ID {contact_id} could not be found" if not create_only
                          else "ContactID cannot be set on a new contact"]
        if create_only and existing is not None:
            return None, ["A contact with this ContactID already exists"]
        errors = []
        fields = dict(existing.fields) if existing else {}
        for key in CONTACT_TEXT_FIELDS:
            if key in element:
                fields[key] = "" if element[key] is None else str(element[key])
        status = str(element.get("ContactStatus") or (existing.status if existing else "ACTIVE")).upper()
        name = fields.get("Name", "").strip()
        if not name:
            errors.append("The contact name must be specified.")
        elif len(name) > 255:
            errors.append("The contact name must be 255 characters or fewer.")
        elif status == "ACTIVE" and org.contacts_by_name.get(name.lower(), set()) - {contact_id}:
            errors.append(f"The contact name {name} is already assigned to another contact. "
                          "The contact name must be unique across all active contacts.")
        number = fields.get("ContactNumber")
        if number and org.contacts_by_number.get(number, set()) - {contact_id}:
            errors.append(f"The contact number {number} is already assigned to another contact.")
        email = fields.get("EmailAddress", "")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            errors.append("Email address must be valid.")
        if status not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
            errors.append(f"ContactStatus {status} is not valid.")
        if errors:
            return None, errors
        addresses = {t: dict(v) for t, v in (existing.addresses if existing else {}).items()}
        for address in element.get("Addresses") or []:  # merged by AddressType
            kind = str(address.get("AddressType", "STREET")).upper()
            addresses.setdefault(kind, {}).update({k: v for k, v in address.items() if k != "AddressType"})
        phones = {t: dict(v) for t, v in (existing.phones if existing else {}).items()}
        for phone in element.get("Phones") or []:
            kind = str(phone.get("PhoneType", "DEFAULT")).upper()
            phones.setdefault(kind, {}).update({k: v for k, v in phone.items() if k != "PhoneType"})
        persons = element["ContactPersons"] if "ContactPersons" in element else (existing.persons if existing else [])
        now = self.clock.now()
        if existing is None:
            contact = _Contact(str(uuid.uuid4()), status, fields, addresses, phones, list(persons), now)
            org.contacts[contact.id] = contact
            self._queue_event(org, "CONTACT", contact.id, "CREATE")
        else:
            contact = existing
            _index_contact(org, contact, add=False)
            contact.status, contact.fields, contact.addresses, contact.phones = status, fields, addresses, phones
            contact.persons, contact.updated = list(persons), now
            self._queue_event(org, "CONTACT", contact.id, "UPDATE")
        _index_contact(org, contact, add=True)
        return contact, []

    def _render_contact(self, org: _Org, contact: _Contact) -> dict:
        f = contact.fields
        out = {"ContactID": contact.id}
        for key in ("ContactNumber", "AccountNumber"):
            if f.get(key):
                out[key] = f[key]
        out["ContactStatus"] = contact.status
        for key in ("Name", "FirstName", "LastName", "CompanyNumber", "EmailAddress"):
            if f.get(key):
                out[key] = f[key]
        out["BankAccountDetails"] = f.get("BankAccountDetails", "")
        out["TaxNumber"] = f.get("TaxNumber", "")
        for key in ("TaxNumberType", "AccountsReceivableTaxType", "AccountsPayableTaxType", "DefaultCurrency", "Website"):
            if f.get(key):
                out[key] = f[key]
        out["Addresses"] = [
            {"AddressType": kind,
             **{k: str(contact.addresses.get(kind, {}).get(k) or "") for k in
                ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "City", "Region", "PostalCode",
                 "Country", "AttentionTo")}}
            for kind in ADDRESS_TYPES
        ]
        out["Phones"] = [
            {"PhoneType": kind,
             **{k: str(contact.phones.get(kind, {}).get(k) or "") for k in
                ("PhoneNumber", "PhoneAreaCode", "PhoneCountryCode")}}
            for kind in PHONE_TYPES
        ]
        out["UpdatedDateUTC"] = ms_date(contact.updated)
        out["ContactGroups"] = list(contact.groups)
        documents = [d for d in (org.invoices.get(i) or org.credit_notes[i]
                                 for i in org.documents_by_contact.get(contact.id, ())) if d.status != "DELETED"]
        # IsCustomer/IsSupplier and Balances are derived, and do not bump UpdatedDateUTC (RR).
        out["IsSupplier"] = any(d.type.startswith("ACCPAY") for d in documents)
        out["IsCustomer"] = any(d.type.startswith("ACCREC") for d in documents)
        out["ContactPersons"] = [
            {"FirstName": p.get("FirstName", ""), "LastName": p.get("LastName", ""),
             "EmailAddress": p.get("EmailAddress", ""), "IncludeInEmails": bool(p.get("IncludeInEmails", False))}
            for p in contact.persons
        ]
        out["HasAttachments"] = False
        out["HasValidationErrors"] = False
        out["Balances"] = {"AccountsReceivable": self._balance(org, documents, "ACCREC"),
                           "AccountsPayable": self._balance(org, documents, "ACCPAY")}
        return out

    def _balance(self, org: _Org, documents: list[_Document], side: str) -> dict:
        today = self.clock.now().date()
        outstanding = overdue = ZERO
        for doc in documents:
            if doc.type.startswith(side) and doc.status == "AUTHORISED":
                due = doc.amount_due
                if doc.is_credit_note:
                    due = -self._remaining_credit(org, doc)
                outstanding += due
                if doc.due_date and doc.due_date < today:
                    overdue += due
        return {"Outstanding": cents(outstanding), "Overdue": cents(overdue)}

    # ------------------------------------------------------------------ invoices and credit notes

    def _save_document(self, org: _Org, element: dict, *, credit_note: bool, create_only: bool = False):
        id_key, number_key = ("CreditNoteID", "CreditNoteNumber") if credit_note else ("InvoiceID", "InvoiceNumber")
        store = org.credit_notes if credit_note else org.invoices
        doc_id = element.get(id_key)
        existing = store.get(doc_id) if doc_id else None
        if doc_id and (existing is None or create_only):
            return None, [f"{id_key} {doc_id} could not be found" if existing is None
                          else f"{id_key} cannot be set when creating"]
        errors: list[str] = []
        if existing is None:
            allowed_types = ("ACCRECCREDIT", "ACCPAYCREDIT") if credit_note else ("ACCREC", "ACCPAY")
            doc_type = str(element.get("Type", "")).upper()
            if doc_type not in allowed_types:
                errors.append(f"Type must be one of {', '.join(allowed_types)}")
            contact, contact_errors = self._document_contact(org, element.get("Contact"))
            errors += contact_errors
            status = str(element.get("Status", "DRAFT")).upper()
            if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
                errors.append(f"A new document cannot be created with status {status}")
        else:
            doc_type, contact, status = existing.type, org.contacts[existing.contact_id], existing.status
            target = str(element.get("Status", status)).upper()
            changes_content = any(k in element for k in ("LineItems", "LineAmountTypes", "Contact", "CurrencyCode"))
            locked = existing.amount_paid > 0 or existing.amount_credited > 0 or self._allocated(org, existing) > 0
            if status in ("VOIDED", "DELETED") or (status == "PAID" and len(set(element) - {id_key}) > 0):
                errors.append(LOCKED_BY_PAYMENT if status == "PAID" else "Invoice not of valid status for modification")
            elif target not in INVOICE_STATUS_MOVES[status]:
                errors.append(f"Cannot change status from {status} to {target}")
            elif locked and (changes_content or target == "VOIDED"):
                errors.append(LOCKED_BY_PAYMENT)
            status = target
        number = element.get(number_key)
        numbers = org.documents_by_number
        store_name = "credit_notes" if credit_note else "invoices"
        if number and doc_type in ("ACCREC", "ACCRECCREDIT") and any(
            store[i].status != "DELETED" for i in numbers.get((store_name, str(number).lower()), ()) if i != doc_id
        ):
            errors.append(f"{'Credit Note' if credit_note else 'Invoice'} # must be unique.")
        line_amount_types = str(element.get("LineAmountTypes", existing.line_amount_types if existing else "Exclusive"))
        if line_amount_types not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax")
        raw_lines = element.get("LineItems")
        lines: list | None = None
        if raw_lines is not None and not errors:
            lines, line_errors = _compute_lines(raw_lines, line_amount_types, doc_type,
                                                existing.line_items if existing else [])
            errors += line_errors
        elif existing is not None and "LineAmountTypes" in element and not errors:
            lines, line_errors = _compute_lines(existing.line_items, line_amount_types, doc_type, existing.line_items)
            errors += line_errors
        try:
            doc_date = parse_body_date(element["Date"]) if element.get("Date") else None
            due_date = parse_body_date(element["DueDate"]) if element.get("DueDate") else None
        except ValueError:
            errors.append("Date could not be parsed")
            doc_date = due_date = None
        if errors:
            return None, errors
        now = self.clock.now()
        if existing is None:
            if not number and doc_type == "ACCREC":
                number, org.next_invoice_number = f"INV-{org.next_invoice_number:04d}", org.next_invoice_number + 1
            elif not number and doc_type == "ACCRECCREDIT":
                number, org.next_credit_note_number = f"CN-{org.next_credit_note_number:04d}", org.next_credit_note_number + 1
            doc = _Document(str(uuid.uuid4()), doc_type, str(number or ""), contact.id, status, line_amount_types,
                            doc_date or now.date(), now, currency=str(element.get("CurrencyCode") or org.currency))
            store[doc.id] = doc
            org.documents_by_contact.setdefault(contact.id, set()).add(doc.id)  # a document keeps its contact
            numbers.setdefault((store_name, doc.number.lower()), set()).add(doc.id)
            event_type = "CREATE"
        else:
            doc, event_type = existing, "UPDATE"
            doc.status, doc.line_amount_types, doc.updated = status, line_amount_types, now
            if number:
                numbers[(store_name, doc.number.lower())].discard(doc.id)
                doc.number = str(number)
                numbers.setdefault((store_name, doc.number.lower()), set()).add(doc.id)
            if doc_date:
                doc.date = doc_date
        if due_date:
            doc.due_date = due_date
        if "Reference" in element:
            doc.reference = str(element["Reference"] or "")
        if "SentToContact" in element:
            doc.sent_to_contact = bool(element["SentToContact"])
        if lines is not None:
            doc.line_items = lines
            _total_up(doc)
        if credit_note:
            self._queue_event(org, "CREDITNOTE", doc.id, event_type, {"Type": doc.type, "Status": doc.status})
        else:
            self._queue_event(org, "INVOICE", doc.id, event_type)
        return doc, []

    def _document_contact(self, org: _Org, ref) -> tuple[_Contact | None, list[str]]:
        """Contact by ContactID, else by Name; an unknown Name creates the contact, as Xero does."""
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")):
            return None, ["A Contact must be specified for this type of transaction"]
        if ref.get("ContactID"):
            contact = org.contacts.get(ref["ContactID"])
            return (contact, []) if contact else (None, [f"Contact with ID {ref['ContactID']} could not be found"])
        match = next((c for c in org.contacts.values()
                      if c.status == "ACTIVE" and c.fields.get("Name", "").lower() == str(ref["Name"]).lower()), None)
        if match:
            return match, []
        return self._save_contact(org, ref, create_only=True)

    def _allocated(self, org: _Org, doc: _Document) -> Decimal:
        return sum((a.amount for a in org.allocations if a.credit_note_id == doc.id), ZERO)

    def _remaining_credit(self, org: _Org, doc: _Document) -> Decimal:
        return doc.total - self._allocated(org, doc) - doc.amount_paid

    def _render_document(self, org: _Org, doc: _Document) -> dict:
        contact = org.contacts[doc.contact_id]
        out = {"Type": doc.type}
        if doc.is_credit_note:
            out.update(CreditNoteID=doc.id, CreditNoteNumber=doc.number, ID=doc.id)
        else:
            out.update(InvoiceID=doc.id, InvoiceNumber=doc.number)
        out["Reference"] = doc.reference
        out["Payments"] = [self._payment_summary(p) for p in org.payments.values()
                           if p.invoice_id == doc.id and p.status == "AUTHORISED"]
        if doc.is_credit_note:
            out["RemainingCredit"] = cents(self._remaining_credit(org, doc))
            out["Allocations"] = [self._render_allocation(org, a) for a in org.allocations if a.credit_note_id == doc.id]
        else:
            out["CreditNotes"] = [
                {"CreditNoteID": a.credit_note_id, "CreditNoteNumber": org.credit_notes[a.credit_note_id].number,
                 "ID": a.credit_note_id, "AppliedAmount": a.amount, "DateString": _day_string(a.date),
                 "Date": ms_date(a.date), "Total": org.credit_notes[a.credit_note_id].total}
                for a in org.allocations if a.invoice_id == doc.id
            ]
            out["Prepayments"] = []
            out["Overpayments"] = []
            out["AmountDue"] = cents(doc.amount_due)
            out["AmountPaid"] = doc.amount_paid
            out["AmountCredited"] = doc.amount_credited
            out["SentToContact"] = doc.sent_to_contact
            out["IsDiscounted"] = doc.total_discount > 0
        out["CurrencyRate"] = RATE_1
        out["HasAttachments"] = False
        out["HasErrors"] = False
        out["Contact"] = {"ContactID": contact.id, "Name": contact.fields.get("Name", ""), "Addresses": [],
                          "Phones": [], "ContactGroups": [], "ContactPersons": [], "HasValidationErrors": False}
        out["DateString"] = _day_string(doc.date)
        out["Date"] = ms_date(doc.date)
        if doc.due_date:
            out["DueDateString"] = _day_string(doc.due_date)
            out["DueDate"] = ms_date(doc.due_date)
        out["Status"] = doc.status
        out["LineAmountTypes"] = doc.line_amount_types
        out["LineItems"] = [dict(line) for line in doc.line_items]
        out["SubTotal"] = doc.sub_total
        out["TotalTax"] = doc.total_tax
        out["Total"] = doc.total
        if doc.total_discount > 0:
            out["TotalDiscount"] = doc.total_discount
        out["UpdatedDateUTC"] = ms_date(doc.updated)
        out["UpdatedDateUTCString"] = _utc_string(doc.updated)
        out["CurrencyCode"] = doc.currency
        if doc.status == "PAID" and doc.fully_paid_on and not doc.is_credit_note:
            out["FullyPaidOnDate"] = ms_date(doc.fully_paid_on)
        return out

    # ------------------------------------------------------------------ payments and allocations

    def _save_payment(self, org: _Org, element: dict) -> tuple[_Payment | None, list[str]]:
        ref = element.get("Invoice") or {}
        invoice = org.invoices.get(ref.get("InvoiceID", "")) or min(
            _numbered(org, "invoices", ref.get("InvoiceNumber")), key=lambda i: i.created_order, default=None)
        account = element.get("Account") or {}
        errors = []
        if invoice is None:
            errors.append("Invoice could not be found")
        elif invoice.status != "AUTHORISED":
            errors.append("Payment can only be made against an Authorised invoice")
        if not (account.get("Code") or account.get("AccountID")):
            errors.append("You must specify an Account code or AccountID for the payment")
        try:
            amount = cents(element.get("Amount"))
        except (InvalidOperation, TypeError, ValueError):
            amount = None
        if amount is None or amount <= 0:
            errors.append("Payment amount must be greater than zero")
        elif invoice is not None and amount > invoice.amount_due:
            errors.append("Payment amount exceeds the amount outstanding on this document")
        try:
            paid_on = parse_body_date(element["Date"]) if element.get("Date") else self.clock.now().date()
        except ValueError:
            errors.append("Date could not be parsed")
        if errors:
            return None, errors
        now = self.clock.now()
        payment = _Payment(str(uuid.uuid4()), invoice.id, str(account.get("Code") or account.get("AccountID")),
                           amount, paid_on, str(element.get("Reference") or ""), "AUTHORISED", now)
        org.payments[payment.id] = payment
        invoice.amount_paid += amount
        self._settle(org, invoice, paid_on, now)
        return payment, []

    def _delete_payment(self, org: _Org, payment_id: str) -> tuple[_Payment | None, list[str]]:
        payment = org.payments.get(payment_id)
        if payment is None:
            return None, ["Payment could not be found"]
        if payment.status == "DELETED":
            return None, ["Payment has already been deleted"]
        now = self.clock.now()
        payment.status, payment.updated = "DELETED", now
        invoice = org.invoices[payment.invoice_id]
        invoice.amount_paid -= payment.amount
        self._settle(org, invoice, None, now)
        return payment, []

    def _settle(self, org: _Org, doc: _Document, paid_on: date | None, now: datetime) -> None:
        """Move between AUTHORISED and PAID as the amount due reaches or leaves zero."""
        if doc.amount_due <= 0 and doc.status == "AUTHORISED":
            doc.status, doc.fully_paid_on = "PAID", paid_on or now.date()
        elif doc.amount_due > 0 and doc.status == "PAID":
            doc.status, doc.fully_paid_on = "AUTHORISED", None
        doc.updated = now  # applying or removing a payment bumps the invoice's UpdatedDateUTC
        if self.invoice_event_on_payment:
            self._queue_event(org, "INVOICE", doc.id, "UPDATE")

    def _payment_summary(self, payment: _Payment) -> dict:
        return {"PaymentID": payment.id, "Date": ms_date(payment.date), "Amount": payment.amount,
                "Reference": payment.reference, "CurrencyRate": RATE_1, "HasAccount": False,
                "HasValidationErrors": False}

    def _render_payment(self, org: _Org, payment: _Payment) -> dict:
        invoice = org.invoices[payment.invoice_id]
        contact = org.contacts[invoice.contact_id]
        return {
            "PaymentID": payment.id,
            "Date": ms_date(payment.date),
            "BankAmount": payment.amount,
            "Amount": payment.amount,
            "Reference": payment.reference,
            "CurrencyRate": RATE_1,
            "PaymentType": "ACCRECPAYMENT" if invoice.type == "ACCREC" else "ACCPAYPAYMENT",
            "Status": payment.status,
            "UpdatedDateUTC": ms_date(payment.updated),
            "UpdatedDateUTCString": _utc_string(payment.updated),
            "HasAccount": True,
            "IsReconciled": False,
            "Account": {"AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-account:{org.id}:{payment.account_code}")),
                        "Code": payment.account_code},
            "Invoice": {"Type": invoice.type, "InvoiceID": invoice.id, "InvoiceNumber": invoice.number,
                        "Contact": {"ContactID": contact.id, "Name": contact.fields.get("Name", "")},
                        "CurrencyCode": invoice.currency, "Payments": [], "CreditNotes": [], "Prepayments": [],
                        "Overpayments": []},
            "HasValidationErrors": False,
        }

    def _allocate(self, org: _Org, credit_note_id: str, element: dict) -> tuple[_Allocation | None, list[str]]:
        credit = org.credit_notes.get(credit_note_id)
        invoice = org.invoices.get((element.get("Invoice") or {}).get("InvoiceID", ""))
        errors = []
        try:
            amount = cents(element.get("Amount"))
        except (InvalidOperation, TypeError, ValueError):
            amount = None
        if credit is None or credit.status != "AUTHORISED":
            errors.append("Credit note must be Authorised to be allocated")
        if invoice is None or invoice.status != "AUTHORISED":
            errors.append("Invoice must be Authorised to receive an allocation")
        elif credit is not None and invoice.contact_id != credit.contact_id:
            errors.append("The credit note and invoice must belong to the same contact")
        if amount is None or amount <= 0:
            errors.append("Allocation amount must be greater than zero")
        elif credit is not None and invoice is not None and not errors:
            if amount > self._remaining_credit(org, credit):
                errors.append("The amount allocated exceeds the remaining credit on the credit note")
            elif amount > invoice.amount_due:
                errors.append("The amount allocated exceeds the outstanding amount on the invoice")
        try:
            on = parse_body_date(element["Date"]) if element.get("Date") else self.clock.now().date()
        except ValueError:
            errors.append("Date could not be parsed")
        if errors:
            return None, errors
        now = self.clock.now()
        allocation = _Allocation(str(uuid.uuid4()), credit.id, invoice.id, amount, on)
        org.allocations.append(allocation)
        invoice.amount_credited += amount
        self._settle(org, invoice, on, now)
        credit.updated = now
        if self._remaining_credit(org, credit) <= 0:
            credit.status = "PAID"
        self._queue_event(org, "CREDITNOTE", credit.id, "UPDATE", {"Type": credit.type, "Status": credit.status})
        return allocation, []

    def _render_allocation(self, org: _Org, allocation: _Allocation) -> dict:
        invoice = org.invoices[allocation.invoice_id]
        return {
            "AllocationID": allocation.id,
            "Amount": allocation.amount,
            "Date": ms_date(allocation.date),
            "Invoice": {"InvoiceID": invoice.id, "InvoiceNumber": invoice.number, "Payments": [], "CreditNotes": [],
                        "Prepayments": [], "Overpayments": [], "HasErrors": False, "IsDiscounted": False,
                        "LineItems": [], "ValidationErrors": []},
            "CreditNote": {"CreditNoteID": allocation.credit_note_id, "ID": allocation.credit_note_id, "LineItems": []},
            "ValidationErrors": [],
        }


# ---------------------------------------------------------------------------------------------
# helpers


def _compute_lines(raw_lines: list, line_amount_types: str, doc_type: str, previous: list) -> tuple[list, list[str]]:
    """Xero's arithmetic (OAS-ACC LineItem): LineAmount = Qty × Unit × (100 − Discount%)/100, tax per line."""
    previous_by_id = {p["LineItemID"]: p for p in previous}
    default_tax = "OUTPUT" if doc_type.startswith("ACCREC") else "INPUT"
    lines, errors = [], []
    for raw in raw_lines:
        base = previous_by_id.get(raw.get("LineItemID"), {})
        raw = {**base, **raw}
        description = str(raw.get("Description") or "")
        if not description and not raw.get("ItemCode"):
            errors.append("The description field is mandatory for each line item.")
            continue
        try:
            quantity = _dec(raw.get("Quantity", 1)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            unit = cents(raw.get("UnitAmount", 0))
            discount_rate = _dec(raw.get("DiscountRate") or 0)
            discount_amount = cents(raw.get("DiscountAmount") or 0)
        except (InvalidOperation, TypeError, ValueError):
            errors.append("Line item amounts must be numbers")
            continue
        tax_type = "NONE" if line_amount_types == "NoTax" else str(raw.get("TaxType") or default_tax).upper()
        if tax_type not in TAX_RATES:
            errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be used with this type of transaction.")
            continue
        gross = quantity * unit
        line_amount = cents(gross * (100 - discount_rate) / 100 - discount_amount)
        rate = TAX_RATES[tax_type]
        if line_amount_types == "Exclusive":
            tax = cents(line_amount * rate / 100)
        elif line_amount_types == "Inclusive":
            tax = cents(line_amount * rate / (100 + rate))
        else:
            tax = ZERO
        line = {"LineItemID": raw.get("LineItemID") or str(uuid.uuid4()), "Description": description,
                "Quantity": quantity, "UnitAmount": unit}
        for key in ("ItemCode", "AccountCode"):
            if raw.get(key):
                line[key] = str(raw[key])
        line.update(TaxType=tax_type, TaxAmount=tax, LineAmount=line_amount, Tracking=raw.get("Tracking") or [])
        if discount_rate:
            line["DiscountRate"] = discount_rate.quantize(CENT)
        if discount_amount:
            line["DiscountAmount"] = discount_amount
        lines.append(line)
    return lines, errors


def _numbered(org: _Org, store_name: str, number) -> list[_Document]:
    """The documents (``store_name``: invoices or credit_notes) whose number is exactly ``number``."""
    if not number:
        return []
    store = getattr(org, store_name)
    ids = org.documents_by_number.get((store_name, str(number).lower()), ())
    return [store[i] for i in ids if store[i].number == number]


def _total_up(doc: _Document) -> None:
    """SubTotal/TotalTax/Total by LineAmountTypes; Inclusive line amounts already contain the tax."""
    line_sum = sum((line["LineAmount"] for line in doc.line_items), ZERO)
    doc.total_tax = cents(sum((line["TaxAmount"] for line in doc.line_items), ZERO))
    doc.sub_total = cents(line_sum - doc.total_tax if doc.line_amount_types == "Inclusive" else line_sum)
    doc.total = cents(doc.sub_total + doc.total_tax)
    doc.total_discount = cents(sum((line["Quantity"] * line["UnitAmount"] - line["LineAmount"]
                                    for line in doc.line_items), ZERO))


def _order(items: list[dict], order: str) -> list[dict]:
    for clause in reversed([c.strip() for c in order.split(",") if c.strip()]):
        parts = clause.split()
        path, descending = parts[0].split("."), len(parts) > 1 and parts[1].upper() == "DESC"

        def sort_key(item, path=path):
            value = _lookup(item, path)
            if value is None:
                return (0, "")
            return (1, value.lower() if isinstance(value, str) else value)

        items = sorted(items, key=sort_key, reverse=descending)
    return items


def _with_errors(element: dict, errors: list[str]) -> dict:
    return {**element, "HasValidationErrors": True, "ValidationErrors": [{"Message": m} for m in errors]}


def _entropy(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(20))


def _webhook_headers(signature: str) -> dict:
    return {"Content-Type": "application/json; charset=utf-8", "x-xero-signature": signature}


def _seconds_until(moment: float, now: float) -> int:
    return max(math.ceil(moment - now), 1)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _fake_id_token(client_id: str, now: float) -> str:
    """JWT-shaped but unsigned: the sandbox makes no claims anyone should verify."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    claims = {"iss": "https://identity.xero.com", "aud": client_id, "iat": int(now), "exp": int(now) + 300,
              "sub": "sandbox-user", "email": "sandbox@example.com"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sandbox"


def _redirect(uri: str, params: dict) -> Response:
    joiner = "&" if "?" in uri else "?"
    return Response("", status=302, headers={"Location": f"{uri}{joiner}{urlencode(params)}"})


def _token_json(payload: dict) -> Response:
    return Response(json.dumps(payload), content_type="application/json; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def json_ok(payload: dict, status: int = 200) -> Response:
    return Response(to_json(payload).encode("utf-8"), status=status, content_type="application/json; charset=utf-8")


def json_error(payload: dict, status: int = 400) -> Response:
    return json_ok(payload, status)


def problem(status: int, title: str, detail: str) -> Response:
    """The problem-details body Xero uses for 401 and 403 (§6)."""
    return json_ok({"Type": None, "Title": title, "Status": status, "Detail": detail,
                    "Instance": str(uuid.uuid4()), "Extensions": {}}, status)


def validation_error(elements: list[dict], message: str = "A validation exception occurred") -> Response:
    return json_error({"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": elements})


def not_found() -> Response:
    return Response(NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")


# ------------------------------------------------------------------ what Xero saw (tests, benchmarks)


def max_calls_in_window(records: list, seconds: float = 60.0) -> int:
    """Most requests (RequestRecord) that started within any ``seconds``-long window."""
    starts = sorted(r.started for r in records)
    peak, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= seconds:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def max_in_flight(records: list) -> int:
    """Most requests (RequestRecord) in flight at once; touching calls do not overlap."""
    edges = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records if r.finished is not None])
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts first
        running += step
        peak = max(peak, running)
    return peak
