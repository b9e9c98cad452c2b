"""A faithful Xero simulator: OAuth 2.0, /connections, Accounting API, rate limits and webhooks.

Served over real HTTP (see ``common.serve``) on the real paths, so a client only changes its base
URLs: ``/identity/connect/authorize`` (login.xero.com), ``/connect/token`` (identity.xero.com),
``/connections`` and ``/api.xro/2.0/...`` (api.xero.com). Behaviour follows Xero's OpenAPI specs
(https://github.com/XeroAPI/Xero-OpenAPI: OAS-ACC accounting, OAS-ID identity, OAS-WH webhooks) and
its pages, cited in each module. One module per role:

- ``app``: ``XeroSandbox``, the WSGI routing and the Python hooks tests and the demo use;
- ``identity``: OAuth 2.0 authorization code and refresh rotation, access tokens, scopes, /connections;
- ``limits``: minute, day, concurrent and app-minute limits, 429s and the remaining-calls headers;
- ``webhooks``: the event queue, signed batches, delivery and the intent-to-receive check;
- ``queries``: ``where``, ``order``, id and status filters, If-Modified-Since, paging (GET);
- ``accounting``: the write rules for contacts, invoices, credit notes, payments, overpayments,
  prepayments and allocations, and currency rates;
- ``state``: what an organisation holds, its indexes and derived amounts;
- ``render``: Xero's JSON shapes of those records and the list envelope;
- ``formats``: money, dates, the JSON text and the canned error responses.
"""

from connector.sandbox.xero.app import XeroSandbox
from connector.sandbox.xero.formats import _to_json_exact, ms_date, parse_body_date, parse_if_modified_since, to_json
from connector.sandbox.xero.limits import max_calls_in_window, max_in_flight
from connector.sandbox.xero.queries import WhereError, parse_where
from connector.sandbox.xero.state import XeroValidationError
from connector.sandbox.xero.webhooks import ITRProbe, ITRResult

__all__ = [
    "ITRProbe", "ITRResult", "WhereError", "XeroSandbox", "XeroValidationError", "_to_json_exact",
    "max_calls_in_window", "max_in_flight", "ms_date", "parse_body_date", "parse_if_modified_since",
    "parse_where", "to_json",
]
