"""The Xero sandbox itself: one WSGI app that routes each request to its role (identity server,
rate limiter, queries, accounting rules, webhooks) and the Python hooks tests and the demo use to
set up organisations and act as a person in Xero's UI would.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import date
from decimal import Decimal
from typing import Any, Callable

from werkzeug.wrappers import Request, Response

from connector.clock import Clock
from connector.json_codec import loads_from_api
from connector.sandbox.common import RequestRecord, SandboxApp
from connector.sandbox.xero.accounting import Books
from connector.sandbox.xero.formats import (
    API_PREFIX,
    ApiResponse,
    json_error,
    json_ok,
    not_found,
    plain_text,
    problem,
    validation_error,
    with_errors,
)
from connector.sandbox.xero.identity import IdentityServer
from connector.sandbox.xero.limits import RateLimiter
from connector.sandbox.xero.queries import read
from connector.sandbox.xero.render import (
    envelope,
    render_allocation,
    render_contact,
    render_document,
    render_organisation,
    render_payment,
    render_received_credit,
)
from connector.sandbox.xero.state import Org, XeroValidationError
from connector.sandbox.xero.webhooks import ITRResult, WebhookSender

RESOURCES = {"contacts": "Contacts", "invoices": "Invoices", "payments": "Payments", "creditnotes": "CreditNotes",
             "overpayments": "Overpayments", "prepayments": "Prepayments", "banktransactions": "BankTransactions"}
# Credits that take allocations (PUT /{Resource}/{id}/Allocations) -> the kind of credit
ALLOCATABLE = {"creditnotes": "CreditNote", "overpayments": "Overpayment", "prepayments": "Prepayment"}


class XeroSandbox(SandboxApp):
    name = "xero"

    # The parts keep time by the sandbox's clock; tests swap it on a served sandbox (a simulated day).
    _CLOCKED_PARTS = ("identity", "limits", "webhooks", "books")

    @property
    def clock(self) -> Clock:
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._clock = clock
        for name in self._CLOCKED_PARTS:
            part = self.__dict__.get(name)
            if part is not None:
                part.clock = clock

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
        self.provider_name = provider_name
        # Seconds each accepted accounting call stays "in flight" (real sleep): lets tests overlap calls.
        self.latency = 0.0
        self._lock = threading.RLock()
        self._random = random.Random(seed)  # window offsets, entropy, ITR order: fixed by ``seed``
        self._orgs: dict[str, Org] = {}
        self._idempotent: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.identity = IdentityServer(self.clock, self._orgs, self._lock, client_id=client_id,
                                       client_secret=client_secret, access_token_ttl=access_token_ttl,
                                       refresh_grace=refresh_grace)
        self.limits = RateLimiter(self.clock, minute_limit=minute_limit, day_limit=day_limit,
                                  concurrent_limit=concurrent_limit, app_minute_limit=app_minute_limit)
        self.webhooks = WebhookSender(self.clock, self._lock, self._random, webhook_key=webhook_key)
        self.books = Books(self.clock, self.webhooks.queue)

    # The credentials a connector is configured with (the control API shows them).
    client_id = property(lambda self: self.identity.client_id)
    client_secret = property(lambda self: self.identity.client_secret)
    webhook_key = property(lambda self: self.webhooks.webhook_key)
    _refresh_tokens = property(lambda self: self.identity.refresh_tokens)
    _access_tokens = property(lambda self: self.identity.access_tokens)

    @property
    def invoice_event_on_payment(self) -> bool:
        """Whether applying a payment/allocation also queues an INVOICE UPDATE event (UNVERIFIED)."""
        return self.books.invoice_event_on_payment

    @invoice_event_on_payment.setter
    def invoice_event_on_payment(self, value: bool) -> None:
        self.books.invoice_event_on_payment = value

    # ------------------------------------------------------------------ hooks for tests and demo

    def add_tenant(self, name: str, *, day_limit: int | None = None, base_currency: str = "NZD",
                   plan: str = "STANDARD", country: str = "NZ") -> str:
        """A new organisation; ``plan`` is GET /Organisation's ``Class`` (STARTER, STANDARD, PREMIUM, DEMO, ...)."""
        tenant_id = str(uuid.uuid4())
        with self._lock:
            self._orgs[tenant_id] = Org(tenant_id, name, self.clock.now(), currency=base_currency, plan=plan,
                                        country=country)
        self.limits.add_tenant(tenant_id, self._random, day_limit)
        return tenant_id

    def issue_grant(
        self, tenant_ids: list[str] | None = None, scope: str = "offline_access accounting.contacts accounting.transactions"
    ) -> dict:
        """A token response as if a user had consented to ``tenant_ids`` (default: every tenant)."""
        return self.identity.issue_grant(tenant_ids, scope)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant behind a refresh token and remove its connections."""
        self.identity.revoke(refresh_token)

    def expire_access_tokens(self) -> None:
        self.identity.expire_access_tokens()

    def set_day_limit(self, tenant_id: str, day_limit: int) -> None:
        self.limits.set_day_limit(tenant_id, day_limit)

    def spend_day_calls(self, tenant_id: str, calls: int) -> None:
        """Count ``calls`` against the tenant's current day window, as if made earlier today: Xero's
        daily budget is per app and tenant, so e.g. a redeployed worker starts part-spent."""
        self.limits.spend_day_calls(tenant_id, calls)

    # ------------------------------------------------------------------ Python data API

    def _in_org(self, tenant_id: str, read: Callable[[Org], Any]) -> Any:
        """``read(org)`` of the tenant's organisation, under the sandbox's lock."""
        with self._lock:
            return read(self._orgs[tenant_id])

    def _change(self, tenant_id: str, change: Callable[[Org], Any], render: Callable[[Org, Any], dict]) -> dict:
        """``change(org)`` under the lock, its validation errors raised (SandboxValidationError), its result
        rendered as Xero answers it."""
        return self._in_org(tenant_id, lambda org: render(org, _raise_on_errors(change(org))))

    def create_contact(self, tenant_id: str, **fields) -> dict:
        return self._change(tenant_id, lambda org: self.books.save_contact(org, fields, create_only=True),
                            self._render_contact)

    def update_contact(self, tenant_id: str, contact_id: str, **changes) -> dict:
        return self._change(tenant_id, lambda org: self.books.save_contact(org, {**changes, "ContactID": contact_id}),
                            self._render_contact)

    def archive_contact(self, tenant_id: str, contact_id: str) -> dict:
        return self.update_contact(tenant_id, contact_id, ContactStatus="ARCHIVED")

    def merge_contacts(self, tenant_id: str, source_id: str, into_id: str) -> dict:
        """A person merges ``source_id`` into ``into_id`` in Xero's web app; the merged contact as rendered."""
        with self._lock:
            org = self._orgs[tenant_id]
            self.books.merge_contacts(org, source_id, into_id)
            return self._render_contact(org, org.contacts[source_id])

    def contact(self, tenant_id: str, contact_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: self._render_contact(org, org.contacts[contact_id]))

    def contacts(self, tenant_id: str) -> list[dict]:
        return self._in_org(tenant_id, lambda org: [self._render_contact(org, c) for c in org.contacts.values()])

    def invoices(self, tenant_id: str) -> list[dict]:
        return self._in_org(tenant_id, lambda org: [render_document(org, d) for d in org.invoices.values()])

    def create_invoice(self, tenant_id: str, contact_id: str, line_items: list[dict], **fields) -> dict:
        """Defaults to an AUTHORISED sales invoice (the HTTP API defaults to DRAFT)."""
        return self._create_document(tenant_id, contact_id, line_items, {"Type": "ACCREC", **fields},
                                     credit_note=False)

    def update_invoice(self, tenant_id: str, invoice_id: str, **changes) -> dict:
        return self._change(
            tenant_id, lambda org: self.books.save_document(org, {**changes, "InvoiceID": invoice_id}, credit_note=False),
            render_document)

    def void_invoice(self, tenant_id: str, invoice_id: str) -> dict:
        return self.update_invoice(tenant_id, invoice_id, Status="VOIDED")

    def invoice(self, tenant_id: str, invoice_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: render_document(org, org.invoices[invoice_id]))

    def add_payment(self, tenant_id: str, invoice_id: str, amount, date: date | str | None = None,
                    rate=None) -> dict:
        """``rate``: the payment day's CurrencyRate for a foreign invoice (default: day rate, else the invoice's)."""
        element = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Amount": amount}
        if rate is not None:
            element["CurrencyRate"] = str(rate)
        return self._save_payment(tenant_id, element, date)

    def refund(self, tenant_id: str, kind: str, credit_id: str, amount, date: date | str | None = None,
               reference: str = "") -> dict:
        """A refund out of a credit (``kind``: CreditNote, Overpayment or Prepayment), as PUT /Payments makes it."""
        element = {kind: {f"{kind}ID": credit_id}, "Account": {"Code": "090"}, "Amount": amount,
                   "Reference": reference}
        return self._save_payment(tenant_id, element, date)

    def _save_payment(self, tenant_id: str, element: dict, date: date | str | None) -> dict:
        """A payment or refund element saved as PUT /Payments saves it (errors raised), rendered as Xero answers."""
        if date is not None:
            element["Date"] = date.isoformat() if hasattr(date, "isoformat") else date
        return self._change(tenant_id, lambda org: self.books.save_payment(org, element), render_payment)

    def reverse_payment(self, tenant_id: str, payment_id: str) -> dict:
        return self._change(tenant_id, lambda org: self.books.delete_payment(org, payment_id), render_payment)

    def payment(self, tenant_id: str, payment_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: render_payment(org, org.payments[payment_id]))

    def create_credit_note(self, tenant_id: str, contact_id: str, line_items: list[dict], **fields) -> dict:
        return self._create_document(tenant_id, contact_id, line_items, {"Type": "ACCRECCREDIT", **fields},
                                     credit_note=True)

    def allocate_credit_note(
        self, tenant_id: str, credit_note_id: str, invoice_id: str, amount, date: date | None = None
    ) -> dict:
        return self.allocate_credit(tenant_id, "CreditNote", credit_note_id, invoice_id, amount, date)

    def set_day_rate(self, tenant_id: str, currency: str, rate) -> None:
        """The CurrencyRate a ``currency`` record gets when its request names none (Xero: the XE.com day rate)."""
        with self._lock:
            self._orgs[tenant_id].day_rates[currency.upper()] = Decimal(str(rate))

    def receive_overpayment(self, tenant_id: str, contact_id: str, amount, **fields) -> dict:
        """A customer paid more than was due: a RECEIVE-OVERPAYMENT bank transaction of ``amount``, no tax."""
        return self._receive_credit(tenant_id, contact_id, amount, "RECEIVE-OVERPAYMENT", fields)

    def receive_prepayment(self, tenant_id: str, contact_id: str, amount, **fields) -> dict:
        """A customer paid before being invoiced: a RECEIVE-PREPAYMENT bank transaction of ``amount``, no tax."""
        return self._receive_credit(tenant_id, contact_id, amount, "RECEIVE-PREPAYMENT", fields)

    def allocate_credit(self, tenant_id: str, kind: str, credit_id: str, invoice_id: str, amount,
                        date: date | None = None) -> dict:
        """Allocate part of a credit (``kind``: CreditNote, Overpayment or Prepayment) to an invoice."""
        element = {"Invoice": {"InvoiceID": invoice_id}, "Amount": amount}
        if date is not None:
            element["Date"] = date.isoformat()
        return self._change(tenant_id, lambda org: self.books.allocate(org, credit_id, element, kind=kind),
                            render_allocation)

    def overpayment(self, tenant_id: str, overpayment_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: render_received_credit(org, org.overpayments[overpayment_id]))

    def prepayment(self, tenant_id: str, prepayment_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: render_received_credit(org, org.prepayments[prepayment_id]))

    def _receive_credit(self, tenant_id: str, contact_id: str, amount, credit_type: str, fields: dict) -> dict:
        element = {"Type": credit_type, "Contact": {"ContactID": contact_id}, "BankAccount": {"Code": "090"},
                   "LineAmountTypes": "NoTax",
                   "LineItems": [{"Description": "Received", "UnitAmount": amount, "AccountCode": "200"}], **fields}
        if isinstance(element.get("Date"), date):
            element["Date"] = element["Date"].isoformat()
        return self._change(tenant_id, lambda org: self.books.receive_credit(org, element), render_received_credit)

    def credit_note(self, tenant_id: str, credit_note_id: str) -> dict:
        return self._in_org(tenant_id, lambda org: render_document(org, org.credit_notes[credit_note_id]))

    def _create_document(self, tenant_id: str, contact_id: str, line_items: list[dict], fields: dict, *,
                         credit_note: bool) -> dict:
        element = {"Status": "AUTHORISED", **fields, "Contact": {"ContactID": contact_id}, "LineItems": line_items}
        return self._change(tenant_id,
                            lambda org: self.books.save_document(org, element, credit_note=credit_note, create_only=True),
                            render_document)

    def _render_contact(self, org: Org, contact) -> dict:
        return render_contact(org, contact, self.clock.now().date())

    # ------------------------------------------------------------------ webhooks

    def pending_events(self) -> list[dict]:
        return self.webhooks.pending(self.base_url)

    def webhook_body(self, events: list[dict], *, entropy: str | None = None) -> bytes:
        return self.webhooks.body(events, entropy=entropy)

    def sign(self, body: bytes) -> str:
        return self.webhooks.sign(body)

    def deliver_webhooks(
        self, url: str, *, max_events_per_post: int = 20, bad_signature: bool = False, timeout: float = 5.0
    ) -> list[int]:
        """POST pending events in batches; each batch is dropped only once answered 200 (0: no answer)."""
        return self.webhooks.deliver(url, self.base_url, max_events_per_post=max_events_per_post,
                                     bad_signature=bad_signature, timeout=timeout)

    def intent_to_receive(self, url: str, *, probes: int = 4, timeout: float = 5.0) -> ITRResult:
        return self.webhooks.intent_to_receive(url, probes=probes, timeout=timeout)

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
                self.limits.release(tenant_id)

    def handle(self, request: Request, record: RequestRecord) -> Response:
        path = request.path
        try:
            if path == "/identity/connect/authorize" and request.method == "GET":
                return self.identity.authorize(request)
            if path == "/connect/token" and request.method == "POST":
                return self.identity.token(request)
            if path == "/connect/revocation" and request.method == "POST":
                return self.identity.revocation(request)
            if path.lower().startswith("/connections"):
                return self.identity.connections_endpoint(request)
            if path.startswith(API_PREFIX + "/"):
                return self._accounting(request, record)
        except ApiResponse as answer:
            return answer.response
        return not_found()

    # ------------------------------------------------------------------ Accounting API

    def _accounting(self, request: Request, record: RequestRecord) -> Response:
        tenant_id = request.headers.get("xero-tenant-id")
        try:
            response = self._accounting_call(request, record, tenant_id)
        except ApiResponse as answer:
            response = answer.response
        response.headers.update(self.limits.headers(tenant_id if self.limits.knows(tenant_id) else None))
        response.headers["Xero-Correlation-Id"] = str(uuid.uuid4())
        response.headers["Cache-Control"] = "max-age=0, no-cache, no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def _accounting_call(self, request: Request, record: RequestRecord, tenant_id: str | None) -> Response:
        grant = self.identity.bearer(request)
        if not tenant_id or tenant_id not in self.identity.connected_tenants(grant) or tenant_id not in self._orgs:
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        breached, retry_after = self.limits.admit(tenant_id)
        if breached:
            return self.limits.rejection(breached, retry_after)
        request.environ["xero_sandbox.slot"] = tenant_id
        record.started = self.clock.time()  # the call is in flight from here on
        if self.latency:
            threading.Event().wait(self.latency)
        resource, _, rest = request.path[len(API_PREFIX) + 1:].partition("/")
        resource = resource.lower()
        if resource == "organisation" and not rest:
            return self._organisation(request, grant, tenant_id)
        if resource not in RESOURCES:
            return not_found()
        self.identity.check_scope(grant, resource, request.method)
        if request.method == "GET":
            with self._lock:
                return read(self._orgs[tenant_id], resource, rest, request.args, request.headers,
                            today=self.clock.now().date(), envelope=self._envelope)
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

    def _organisation(self, request: Request, grant, tenant_id: str) -> Response:
        """GET /Organisation: one element, the tenant's settings
        (https://developer.xero.com/documentation/api/accounting/organisation). Without accounting.settings(.read)
        the answer is 401 AuthorizationUnsuccessful like any resource whose scope was not granted (``check_scope``;
        UNVERIFIED for this endpoint in particular: a real org connected without the scope would show it). Only GET
        is offered: Xero's response-codes page names "POST Organisation" as its 501 example
        (https://developer.xero.com/documentation/api/http-response-codes)."""
        if request.method != "GET":
            return plain_text("The method you have called has not been implemented", 501)
        self.identity.check_scope(grant, "organisation", request.method)
        with self._lock:
            element = render_organisation(self._orgs[tenant_id])
        return json_ok(self._envelope("Organisations", [element]))

    def _envelope(self, plural: str, items: list, pagination: dict | None = None) -> dict:
        return envelope(plural, items, provider_name=self.provider_name, now=self.clock.now(), pagination=pagination)

    def _write(self, org: Org, resource: str, rest: str, request: Request) -> Response:
        try:
            body = loads_from_api(request.get_data() or b"{}")
        except ValueError:
            return json_error({"ErrorNumber": 14, "Type": "PostDataInvalidException",
                               "Message": "JSON for post data was invalid"})
        parts = rest.split("/") if rest else []
        plural = RESOURCES[resource]
        if resource in ALLOCATABLE and len(parts) == 2 and parts[1].lower() == "allocations":
            kind = ALLOCATABLE[resource]
            store = {"CreditNote": org.credit_notes, "Overpayment": org.overpayments, "Prepayment": org.prepayments}
            if request.method != "PUT" or parts[0] not in store[kind]:
                return not_found()
            elements = body.get("Allocations", [body]) if isinstance(body, dict) else body
            results = [self.books.allocate(org, parts[0], e, kind=kind) for e in elements]
            return self._write_response(org, request, "Allocations", elements, results, render_allocation)
        if len(parts) > 1 or resource in ("overpayments", "prepayments"):
            return not_found()  # created through BankTransactions; changed only by allocations here
        elements = body.get(plural, [body]) if isinstance(body, dict) else body
        path_id = parts[0] if parts else None
        if path_id is not None and request.method == "PUT":
            return not_found()
        results = []
        for element in elements:
            if resource == "contacts":
                if path_id:
                    element = {**element, "ContactID": path_id}
                results.append(self.books.save_contact(org, element, create_only=request.method == "PUT",
                                                       via_api=True))
            elif resource in ("invoices", "creditnotes"):
                id_key = "InvoiceID" if resource == "invoices" else "CreditNoteID"
                if path_id:
                    element = {**element, id_key: path_id}
                results.append(self.books.save_document(org, element, credit_note=resource == "creditnotes",
                                                        create_only=request.method == "PUT"))
            elif resource == "banktransactions":
                if path_id:
                    return not_found()
                results.append(self.books.receive_credit(org, element))
            elif path_id:  # POST /Payments/{id} only deletes
                if path_id not in org.payments:
                    return not_found()
                if str(element.get("Status", "")).upper() != "DELETED":
                    results.append((None, ["Payments can only be deleted, by setting Status to DELETED"]))
                else:
                    results.append(self.books.delete_payment(org, path_id))
            else:
                results.append(self.books.save_payment(org, element))
        render = {"contacts": self._render_contact, "payments": render_payment,
                  "banktransactions": render_bank_transaction}.get(resource, render_document)
        return self._write_response(org, request, plural, elements, results, render)

    def _write_response(self, org, request, plural, elements, results, render) -> Response:
        """summarizeErrors defaults to true: any failure → 400 listing the failures only."""
        summarize = request.args.get("summarizeErrors", "true").strip().lower() != "false"
        failures = [(e, errors) for e, (_, errors) in zip(elements, results) if errors]
        if failures and summarize:
            return validation_error([with_errors(e, errs) for e, errs in failures])
        items = []
        for element, (value, errors) in zip(elements, results):
            if errors:
                items.append({**with_errors(element, errors), "StatusAttributeString": "ERROR"})
            else:
                rendered = render(org, value)
                if not summarize:
                    rendered = {**rendered, "StatusAttributeString": "OK"}
                items.append(rendered)
        return json_ok(self._envelope(plural, items))


def render_bank_transaction(org: Org, credit) -> dict:
    """The bank transaction that created an overpayment or prepayment, with the id of what it created
    (OAS-ACC ``BankTransaction``: OverpaymentID / PrepaymentID). Its own BankTransactionID is not kept: the
    sandbox serves no GET /BankTransactions."""
    rendered = render_received_credit(org, credit)
    return {"Type": credit.type, "BankTransactionID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-bt:{credit.id}")),
            **{k: rendered[k] for k in ("Contact", "Date", "Status", "LineAmountTypes", "LineItems", "SubTotal",
                                        "TotalTax", "Total", "UpdatedDateUTC", "CurrencyCode", "CurrencyRate")},
            f"{credit.kind}ID": credit.id, "IsReconciled": False}


def _raise_on_errors(result):
    value, errors = result
    if errors:
        raise XeroValidationError(errors)
    return value
