"""Xero's list and read parameters: ``where`` expressions, ``order``, ``IDs``/``ContactIDs``,
``InvoiceNumbers``/``Statuses``, ``If-Modified-Since``, ``searchTerm``, ``summaryOnly`` and paging,
applied to one organisation's records (``read``).

Page: https://developer.xero.com/documentation/api/requests-and-responses and the parameters of
each endpoint in the OAS-ACC spec (https://github.com/XeroAPI/Xero-OpenAPI). Pure: the request's
arguments and headers in, a response out.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Callable

from werkzeug.wrappers import Response

from connector.sandbox.xero.formats import (
    from_ms_date,
    json_ok,
    not_found,
    parse_if_modified_since,
    plain_text,
    to_decimal,
)
from connector.sandbox.xero.render import render_contact, render_document, render_payment, render_received_credit
from connector.sandbox.xero.state import Org, numbered

MAX_IDS_BEFORE_GATEWAY_404 = 52  # 53 GUIDs in IDs= gets a 404 from the gateway, not a 400 (RR)
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# Which list filters by id each endpoint takes
ID_FILTERS = {"contacts": ["IDs"], "invoices": ["IDs", "ContactIDs"], "creditnotes": [], "payments": [],
              "overpayments": [], "prepayments": []}
SEARCH_FIELDS = {"contacts": ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"),
                 "invoices": ("InvoiceNumber", "Reference")}


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
        return self._chain(self.and_expr, ("||", "OR"), any)

    def and_expr(self):
        return self._chain(self.term, ("&&", "AND"), all)

    def _chain(self, operand, operators: tuple[str, ...], combine):
        """``operand`` joined by any of ``operators``: true of an item as ``combine`` (any, all) of the operands."""
        nodes = [operand()]
        while self.peek() and self.peek()[1] in operators:
            self.take()
            nodes.append(operand())
        return lambda item: combine(n(item) for n in nodes)

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
        return from_ms_date(value) or value
    return value


def _compare(actual, op: str, expected) -> bool:
    if expected is None or actual is None:
        same = (actual in (None, "")) == (expected is None) if expected is None else False
        return same if op == "==" else (not same if op == "!=" else False)
    if isinstance(expected, bool) or isinstance(actual, bool):
        actual, expected = bool(actual), bool(expected)
    elif isinstance(expected, Decimal):
        actual = to_decimal(actual)
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


def order_by(items: list[dict], order: str) -> list[dict]:
    """``order=Field[.Sub] [ASC|DESC], ...`` over rendered records; missing values sort first."""
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


# ---------------------------------------------------------------------------------------------
# paging and flags


def page_and_size(args) -> tuple[int, int] | Response:
    """The requested page (from 1) and page size (1 to MAX_PAGE_SIZE), or Xero's 400 for a bad number."""
    try:
        page = max(int(args.get("page", 1)), 1)
        size = min(max(int(args.get("pageSize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
    except ValueError:
        return plain_text("Supplied parameter 'page' cannot be parsed.", 400)
    return page, size


def pagination(page: int, size: int, count: int) -> dict:
    return {"page": page, "pageSize": size, "pageCount": math.ceil(count / size), "itemCount": count}


def truthy(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"  # the Python SDK sends True/False


def is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# GET /{Resource}[/{id or number}]

Envelope = Callable[..., dict]  # (plural, items, pagination=None) -> the list envelope


def read(org: Org, resource: str, rest: str, args, headers, *, today: date, envelope: Envelope) -> Response:
    """One record (by id, or by ContactNumber/InvoiceNumber/CreditNoteNumber) or a filtered list."""
    plural, by_id, render, key_field = {
        "contacts": ("Contacts", org.contacts, lambda o, c: render_contact(o, c, today), "ContactNumber"),
        "invoices": ("Invoices", org.invoices, render_document, "InvoiceNumber"),
        "creditnotes": ("CreditNotes", org.credit_notes, render_document, "CreditNoteNumber"),
        "payments": ("Payments", org.payments, render_payment, None),
        "overpayments": ("Overpayments", org.overpayments, render_received_credit, None),
        "prepayments": ("Prepayments", org.prepayments, render_received_credit, None),
    }.get(resource, (None, None, None, None))
    if plural is None:  # a resource the sandbox only writes (BankTransactions)
        return not_found()
    if rest:
        item = by_id.get(rest)
        if item is None and key_field:  # /Contacts/{ContactNumber}, /Invoices/{InvoiceNumber}
            if resource == "contacts":
                holders = [org.contacts[i] for i in org.contacts_by_number.get(rest, ())]
            else:
                holders = numbered(org, "invoices" if resource == "invoices" else "credit_notes", rest)
            item = min(holders, key=lambda x: x.created_order, default=None)
        if item is None or "/" in rest:
            return not_found()
        return json_ok(envelope(plural, [render(org, item)]))
    matches: set[str] | None = None  # ids the IDs/ContactIDs filters leave; None: no such filter
    for param in ID_FILTERS[resource]:
        if param in args:
            wanted = [v.strip() for v in args[param].split(",") if v.strip()]
            if len(wanted) > MAX_IDS_BEFORE_GATEWAY_404:
                return not_found()  # the gateway's misleading answer to a long IDs list
            if not all(is_guid(v) for v in wanted):
                return plain_text(f"Supplied parameter '{param}' cannot be parsed - must be of type UUID.", 400)
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
    if resource == "contacts" and not truthy(args.get("includeArchived")) and "IDs" not in args:
        records = [r for r in records if r.status != "ARCHIVED"]
    if resource == "invoices":
        if "InvoiceNumbers" in args:
            numbers = {v.strip().lower() for v in args["InvoiceNumbers"].split(",")}
            records = [r for r in records if r.number.lower() in numbers]
        if "Statuses" in args:
            statuses = {v.strip().upper() for v in args["Statuses"].split(",")}
            records = [r for r in records if r.status in statuses]
    if "If-Modified-Since" in headers:
        try:
            since = parse_if_modified_since(headers["If-Modified-Since"])
        except (ValueError, TypeError):
            return plain_text("Supplied header 'If-Modified-Since' cannot be parsed.", 400)
        # Accurate to the second (RR): a change within the same second as the stamp is not "after" it.
        records = [r for r in records if r.updated.replace(microsecond=0) > since.replace(microsecond=0)]
    summary_drop = {"Balances"} if resource == "contacts" else {"LineItems"}
    by_update = re.fullmatch(r"\s*UpdatedDateUTC(\s+(ASC|DESC))?\s*", args.get("order") or "", re.IGNORECASE)
    if by_update and "page" in args and not args.get("searchTerm") and not args.get("where"):
        # Same answer as below, but only the requested page is rendered: an org of tens of
        # thousands of records is listed page by page in milliseconds.
        records = sorted(records, key=lambda r: int(r.updated.timestamp() * 1000),
                         reverse=(by_update.group(2) or "").upper() == "DESC")
        paging = page_and_size(args)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        rendered = [render(org, r) for r in records[(page - 1) * size: page * size]]
        if truthy(args.get("summaryOnly")):
            rendered = [{k: v for k, v in r.items() if k not in summary_drop} for r in rendered]
        return json_ok(envelope(plural, rendered, pagination(page, size, len(records))))
    rendered = [render(org, r) for r in records]
    if args.get("searchTerm"):
        term = args["searchTerm"].lower()
        fields = SEARCH_FIELDS.get(resource, ())
        rendered = [r for r in rendered if any(term in str(r.get(f, "")).lower() for f in fields)]
    if args.get("where"):
        try:
            predicate = parse_where(args["where"])
        except WhereError as exc:
            return plain_text(str(exc), 400)
        rendered = [r for r in rendered if predicate(r)]
    if args.get("order"):
        rendered = order_by(rendered, args["order"])
    drop = set()
    if truthy(args.get("summaryOnly")):  # which fields go is UNVERIFIED; the computed ones here
        drop = set(summary_drop)
    if "page" not in args and resource in ("invoices", "creditnotes"):
        drop.add("LineItems")  # unpaged invoice lists omit line items (xero-node#270): always pass page
    if drop:
        rendered = [{k: v for k, v in r.items() if k not in drop} for r in rendered]
    paged = None
    if "page" in args or "pageSize" in args:
        paging = page_and_size(args)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        paged = pagination(page, size, len(rendered))
        rendered = rendered[(page - 1) * size: page * size]
    return json_ok(envelope(plural, rendered, paged))
