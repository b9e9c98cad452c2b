"""An HTTP control API for running simulators, under ``/_sandbox/`` on both of their ports.

Tests and operators rehearsing failures drive a sandbox that runs in its own process through it:
inject faults (status codes, latency that holds a call open, timeouts, answers lost after the work
was done, 429 storms, 207 partial failures), lapse Zoho channels, revoke grants, create data (Xero seeds; Zoho records as a person adds them),
deliver Xero webhooks and Zoho notifications, and read the simulators' own state and request logs.

Every call needs ``Authorization: Bearer <control token>`` (printed by ``connector sandbox``): the
control API changes what the simulators answer, so it is never open to whoever reaches the port.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Callable

from werkzeug.wrappers import Request, Response

from connector.json_codec import dumps_lenient
from connector.sandbox.common import FAULT_KINDS, SandboxApp
from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox

PREFIX = "/_sandbox/"


def _json(payload, status: int = 200) -> Response:
    # Anything JSON has no type for (Decimal money, datetimes) is written as its str.
    return Response(dumps_lenient(payload), status=status, content_type="application/json")


class ControlError(ValueError):
    pass


class SandboxControl:
    """The control routes for one Xero and one Zoho simulator."""

    def __init__(self, xero: XeroSandbox, zoho: ZohoSandbox, *, token: str | None = None) -> None:
        self.xero = xero
        self.zoho = zoho
        self.token = token or secrets.token_urlsafe(24)
        self.xero_grants: dict[str, dict] = {}  # tenant id -> the grant issued when it was added
        self._routes: dict[tuple[str, str], Callable[[Request], object]] = {
            ("GET", "info"): self._info,
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "requests"): self._requests,
            ("POST", "xero/tenants"): self._add_tenant,
            ("POST", "xero/seed"): self._seed,
            ("POST", "xero/contacts"): self._update_contact,
            ("GET", "xero/state"): self._xero_state,
            ("GET", "xero/pending"): lambda r: {"events": self.xero.pending_events()},
            ("POST", "xero/deliver"): self._deliver_webhooks,
            ("POST", "xero/revoke"): self._revoke_xero,
            ("POST", "zoho/grants"): lambda r: {"refresh_token": self.zoho.issue_refresh_token()},
            ("POST", "zoho/revoke"): self._revoke_zoho,
            ("GET", "zoho/state"): self._zoho_state,
            ("GET", "zoho/channels"): lambda r: {"channels": self.zoho.channels()},
            ("POST", "zoho/channels/lapse"): self._lapse_channels,
            ("POST", "zoho/person-edit"): self._person_edit,
            ("POST", "zoho/person-create"): self._person_create,
            ("GET", "zoho/pending"): lambda r: {"notifications": self.zoho.pending_notifications()},
            ("POST", "zoho/deliver"): lambda r: {"statuses": self.zoho.deliver_notifications()},
        }

    def wrap(self, app: SandboxApp) -> Callable:
        """A WSGI app serving the control routes under /_sandbox/ and ``app`` everywhere else."""

        def dispatch(environ, start_response):
            if environ.get("PATH_INFO", "").startswith(PREFIX):
                return self(environ, start_response)
            return app(environ, start_response)

        return dispatch

    def __call__(self, environ, start_response):
        request = Request(environ)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _json({"error": "control API: send Authorization: Bearer <control token>"}, 401)(
                environ, start_response)
        route = self._routes.get((request.method, request.path[len(PREFIX):].strip("/")))
        if route is None:
            return _json({"error": "no such control route"}, 404)(environ, start_response)
        try:
            payload = route(request)
        except (ControlError, KeyError, TypeError, ValueError) as exc:
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)(environ, start_response)
        return _json(payload)(environ, start_response)

    # ------------------------------------------------------------------ routes

    @staticmethod
    def _body(request: Request) -> dict:
        body = json.loads(request.get_data() or b"{}")
        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        return body

    def _system(self, name: str | None) -> SandboxApp:
        if name == "xero":
            return self.xero
        if name == "zoho":
            return self.zoho
        raise ControlError("system must be 'xero' or 'zoho'")

    def _info(self, request: Request) -> dict:
        return {
            "xero": {"url": self.xero.base_url, "client_id": self.xero.client_id,
                     "client_secret": self.xero.client_secret, "webhook_key": self.xero.webhook_key,
                     "tenants": self.xero_grants},
            "zoho": {"url": self.zoho.base_url, "client_id": self.zoho.client_id,
                     "client_secret": self.zoho.client_secret},
        }

    def _add_fault(self, request: Request) -> dict:
        spec = self._body(request)
        return {"queued": add_fault(self.xero, self.zoho, **spec)}

    def _clear_faults(self, request: Request) -> dict:
        for system in (self.xero, self.zoho):
            system.faults.clear()
        self.zoho.fail_partially(-(1 << 30))
        return {"cleared": True}

    def _requests(self, request: Request) -> dict:
        system = self._system(request.args.get("system"))
        since = int(request.args.get("since", 0))
        records = system.requests[since:]
        return {"next": since + len(records), "requests": [
            {"started": r.started, "finished": r.finished, "method": r.method, "path": r.path, "query": r.query,
             "tenant": r.tenant, "status": r.status} for r in records]}

    def add_tenant(self, name: str) -> dict:
        tenant_id = self.xero.add_tenant(name)
        grant = self.xero.issue_grant([tenant_id])
        self.xero_grants[tenant_id] = {"name": name, **grant}
        return {"tenant_id": tenant_id, **grant}

    def _add_tenant(self, request: Request) -> dict:
        return self.add_tenant(self._body(request).get("name") or "Sandbox Organisation Ltd")

    def _seed(self, request: Request) -> dict:
        """{tenant_id, contacts, invoices (per active contact), seed}; or {tenant_id, invoices_for: [ids],
        invoices, reference (optional: each new invoice's Reference)} to add invoices to contacts that exist."""
        from connector.sandbox.xero_seed import seed_demo_org, seed_invoices

        body = self._body(request)
        tenant_id = body["tenant_id"]
        rng_seed = int(body.get("seed", 7))
        if "invoices_for" in body:
            contact_ids = list(body["invoices_for"])
        else:
            contact_ids = seed_demo_org(self.xero, tenant_id, contacts=int(body.get("contacts", 25)), seed=rng_seed)
        per_contact = int(body.get("invoices", 0))
        invoice_ids = seed_invoices(self.xero, tenant_id, contact_ids, per_contact=per_contact,
                                    seed=rng_seed) if per_contact else []
        return {"contact_ids": contact_ids, "invoice_ids": invoice_ids}

    def _update_contact(self, request: Request) -> dict:
        body = self._body(request)
        return self.xero.update_contact(body["tenant_id"], body["contact_id"], **body["changes"])

    def _xero_state(self, request: Request) -> dict:
        tenant_id = request.args["tenant_id"]
        return {"contacts": self.xero.contacts(tenant_id), "invoices": self.xero.invoices(tenant_id)}

    def _deliver_webhooks(self, request: Request) -> dict:
        body = self._body(request)
        statuses = self.xero.deliver_webhooks(body["url"], max_events_per_post=int(body.get("max_events_per_post", 20)),
                                              bad_signature=bool(body.get("bad_signature", False)))
        return {"statuses": statuses, "pending": len(self.xero.pending_events())}

    def _revoke_xero(self, request: Request) -> dict:
        self.xero.revoke(self._body(request)["refresh_token"])
        return {"revoked": True}

    def _revoke_zoho(self, request: Request) -> dict:
        self.zoho.revoke(self._body(request)["refresh_token"])
        return {"revoked": True}

    def _zoho_state(self, request: Request) -> dict:
        modules = [m for m in request.args.get("modules", "Accounts,Contacts,Invoices").split(",") if m]
        return {"records": {m: self.zoho.records(m) for m in modules}, "writes": len(self.zoho.writes())}

    def _lapse_channels(self, request: Request) -> dict:
        wanted = self._body(request).get("channel_id")
        lapsed = [c["channel_id"] for c in self.zoho.channels() if wanted in (None, str(c["channel_id"]))]
        for channel_id in lapsed:
            self.zoho.lapse_channel(channel_id)
        return {"lapsed": lapsed}

    def _person_create(self, request: Request) -> dict:
        body = self._body(request)
        return self.zoho.person_create(body["module"], **body["fields"])

    def _person_edit(self, request: Request) -> dict:
        body = self._body(request)
        return self.zoho.person_edit(body["module"], body["id"], **body["changes"])


def add_fault(xero: XeroSandbox, zoho: ZohoSandbox, *, system: str, kind: str = "status", count: int = 1,
              status: int = 500, delay: float = 5.0, path_prefix: str | None = None, method: str | None = None,
              body: str | None = None, headers: dict | None = None) -> int:
    """Queue ``count`` faults of ``kind`` on one simulator; returns the faults now queued there.

    kind: status (answer ``status``), timeout (no answer for ``delay`` s, nothing done), lost (done,
    then no answer for ``delay`` s), latency (held open ``delay`` s, then done and answered), and for
    Zoho partial (the next ``count`` batch writes refuse every other record: a 207).
    """
    target = xero if system == "xero" else zoho if system == "zoho" else None
    if target is None:
        raise ControlError("system must be 'xero' or 'zoho'")
    if kind == "partial":
        if target is not zoho:
            raise ControlError("partial failures (207) are a Zoho fault")
        return zoho.fail_partially(int(count))
    if kind not in FAULT_KINDS:
        raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS + ('partial',))}")
    target.faults.fail_next(int(count), status=int(status), timeout=kind == "timeout", lost_response=kind == "lost",
                            latency=kind == "latency", delay=float(delay), path_prefix=path_prefix, method=method,
                            body=body, headers={str(k): str(v) for k, v in (headers or {}).items()})
    return target.faults.pending()
