"""A Zoho CRM v8 simulator: the app, its state, the concurrency limits and the routing.

The roles live beside it: accounts.py (OAuth, per data centre), metadata.py (module registry, field
metadata, field creation), records.py (Records API), validation.py (per-record rules), channels.py
(notification channels), render.py (JSON bodies, errors).

Served over real HTTP by ``serve()``; only scheme, host and port differ from Zoho. Facts follow Zoho's
v8 pages (https://www.zoho.com/crm/developer/docs/api/v8/) and its OpenAPI specs
(https://github.com/zoho/crm-oas); comments cite them as "Zoho: ..." or mark a choice UNVERIFIED where no
source settles it. State lives in memory; tests drive it through HTTP and
through the Python hooks (``issue_refresh_token``, ``person_edit``, ``deliver_notifications``...).
"""

from __future__ import annotations

import itertools
import json
import threading

from werkzeug.wrappers import Request, Response

from connector.clock import Clock
from connector.sandbox.common import RequestRecord, SandboxApp
from connector.sandbox.zoho.accounts import AccountsServer, _Grant
from connector.sandbox.zoho.channels import NotificationChannels
from connector.sandbox.zoho.metadata import MODULES, FieldSpec, MetadataApi, module_fields
from connector.sandbox.zoho.records import RecordsApi
from connector.sandbox.zoho.render import _error
from connector.sandbox.zoho.validation import RecordRules

SUB_CONCURRENCY_RECORDS = 10  # writes of more than 10 records count against sub-concurrency


class ZohoSandbox(AccountsServer, MetadataApi, RecordsApi, RecordRules, NotificationChannels, SandboxApp):
    """Zoho CRM v8 plus its accounts server, in one WSGI app: the state, the limits and the routing;
    each role's routes and rules come from its module (accounts, metadata, records, validation, channels)."""

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
        self.fields: dict[str, dict[str, FieldSpec]] = {name: module_fields(name, xero_fields) for name in self.modules}
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
        # (module, record id, related module) -> ids related by a many-to-many list (a deal's products)
        self._relations: dict[tuple[str, str, str], list[str]] = {}
        self._in_flight = 0
        self._sub_in_flight = 0
        self._gate: threading.Event | None = None
        self._partial_writes = 0  # writes left that refuse every other record (fail_partially)

    # ----------------------------------------------------------------- limits, hooks for tests

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
        if len(parts) == 3 and parts[0] in self.modules and method == "GET":
            return self._get_related(parts[0], parts[1], parts[2], request)
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

