"""The newest fetched version of each Xero record.

Webhooks arrive out of order and fetches overlap, so a write only lands when its
``source_updated_at`` (Xero's UpdatedDateUTC) is at least as new as the stored one. The check
lives inside one INSERT ... ON CONFLICT DO UPDATE ... WHERE, so concurrent writers cannot
interleave between reading and writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, literal, literal_column, select, type_coerce
from sqlalchemy import text as text_sql
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.batch_reads import BatchReads
from connector.store.db import (core_connection, from_row, insert_rows, probe_by_key, probe_rows, session_scope,
                                 upsert_where)
from connector.store.tables import SEARCH_NAME_TRIGRAM_INDEX, JsonDocument, XeroSnapshot


@dataclass(frozen=True)
class Snapshot:
    connection_id: int
    resource: str
    xero_id: str
    source_updated_at: datetime
    payload: dict[str, Any]
    fetched_at: datetime


_SNAPSHOT_COLUMNS = ["connection_id", "resource", "xero_id", "contact_id", "search_number", "search_email",
                     "search_name", "source_updated_at", "payload", "fetched_at"]

# What the console's record search looks in.
SEARCHED_RESOURCES = ("contacts", "invoices", "creditnotes", "payments", "overpayments", "prepayments")
# The resources a customer's money figures read (connector/mapping/money.py).
MONEY_RESOURCES = ("invoices", "creditnotes", "payments", "overpayments", "prepayments")
# Where a payment names its contact: on the document it pays, one of these.
_PAYMENT_DOCUMENTS = ("Invoice", "CreditNote", "Overpayment", "Prepayment")


def contact_of(resource: str, payload: dict) -> str | None:
    """The Xero ContactID a record belongs to (its own for a contact); None when the payload has none.

    Migration 0013 fills existing rows with the same paths.
    """
    def contact_in(document: object) -> str | None:
        contact = document.get("Contact") if isinstance(document, dict) else None
        value = contact.get("ContactID") if isinstance(contact, dict) else None
        return str(value) if value else None

    if resource == "contacts":
        return str(payload["ContactID"]) if payload.get("ContactID") else None
    if resource == "payments":
        return next((found for key in _PAYMENT_DOCUMENTS if (found := contact_in(payload.get(key)))), None)
    return contact_in(payload)


# The search columns' width; Xero's numbers, emails and names are shorter (https://developer.xero.com/documentation/api/accounting/contacts
# and /invoices give 255 for Name, EmailAddress and InvoiceNumber).
SEARCH_KEY_LENGTH = 255
# The payload field each search column is read from, per resource. Migration 0017 fills existing rows from the same.
SEARCH_FIELDS = {"invoices": {"search_number": "InvoiceNumber"},
                 "creditnotes": {"search_number": "CreditNoteNumber"},
                 "contacts": {"search_email": "EmailAddress", "search_name": "Name"}}
_NO_SEARCH_KEYS = {"search_number": None, "search_email": None, "search_name": None}


def search_key(value: object) -> str | None:
    """How a searched value and the text searched for are compared: trimmed, case folded."""
    key = str(value).strip().casefold()[:SEARCH_KEY_LENGTH] if value is not None else ""
    return key or None


def search_keys(resource: str, payload: dict) -> dict[str, str | None]:
    """The search columns of a record (all three, None where it has none), computed in the upsert's own pass."""
    fields = SEARCH_FIELDS.get(resource)
    if fields is None:
        return _NO_SEARCH_KEYS
    return {**_NO_SEARCH_KEYS, **{column: search_key(payload.get(name)) for column, name in fields.items()}}


def _replace_if_not_newer(statement):
    """``put_if_newer``'s upsert for a batch, returning the ids stored."""
    return statement.on_conflict_do_update(
        index_elements=[XeroSnapshot.connection_id, XeroSnapshot.resource, XeroSnapshot.xero_id],
        set_={"source_updated_at": statement.excluded.source_updated_at, "contact_id": statement.excluded.contact_id,
              "search_number": statement.excluded.search_number, "search_email": statement.excluded.search_email,
              "search_name": statement.excluded.search_name,
              "payload": statement.excluded.payload, "fetched_at": statement.excluded.fetched_at},
        where=XeroSnapshot.source_updated_at <= statement.excluded.source_updated_at,
    ).returning(XeroSnapshot.xero_id)


class SnapshotStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._has_trigram_index: bool | None = None  # PostgreSQL: learnt on the first search

    def put_if_newer(
        self, connection_id: int, resource: str, xero_id: str, *, source_updated_at: datetime, payload: dict
    ) -> bool:
        """Store ``payload`` unless a newer version is already stored; True when it was stored.

        Decimal values in the payload are stored as strings and come back as strings.
        """
        values = {"source_updated_at": source_updated_at, "contact_id": contact_of(resource, payload),
                  **search_keys(resource, payload), "payload": payload, "fetched_at": self._clock.now()}
        with session_scope(self._sessions) as session:
            # Equal timestamps overwrite: a re-fetch of the same version is harmless and
            # picks up anything Xero changed without bumping UpdatedDateUTC.
            return upsert_where(session, XeroSnapshot,
                                {"connection_id": connection_id, "resource": resource, "xero_id": xero_id}, values,
                                lambda excluded: XeroSnapshot.source_updated_at <= excluded.source_updated_at)

    def put_many_if_newer(self, connection_id: int, resource: str,
                          records: list[tuple[str, datetime, dict]]) -> set[str]:
        """``put_if_newer`` for a batch of (xero id, source_updated_at, payload) in one statement and
        one transaction; returns the ids stored. Of one id given twice only the newest is offered."""
        newest: dict[str, tuple[datetime, dict]] = {}
        for xero_id, updated, payload in records:
            if xero_id not in newest or newest[xero_id][0] <= updated:
                newest[xero_id] = (updated, payload)
        if not newest:
            return set()
        now = self._clock.now()
        rows = [{"connection_id": connection_id, "resource": resource, "xero_id": xero_id,
                 "contact_id": contact_of(resource, payload), **search_keys(resource, payload),
                 "source_updated_at": updated, "payload": payload, "fetched_at": now}
                for xero_id, (updated, payload) in newest.items()]
        with session_scope(self._sessions) as session:  # one statement for the batch
            return set(insert_rows(session, XeroSnapshot.__table__, _SNAPSHOT_COLUMNS, rows,
                                   on_conflict=_replace_if_not_newer).scalars())

    def get_many(self, connection_id: int, resource: str, xero_ids: list[str]) -> dict[str, Snapshot]:
        """The stored snapshots of these ids (absent ones left out), in one query per 500 ids."""
        wanted = list(dict.fromkeys(xero_ids))
        found: dict[str, Snapshot] = {}
        with session_scope(self._sessions) as session:
            for start in range(0, len(wanted), 500):
                rows = probe_rows(session, XeroSnapshot.__table__, "xero_id", wanted[start:start + 500],
                                  connection_id=connection_id, resource=resource)
                found.update({row.xero_id: _snapshot(row) for row in rows})
        return found

    def customer_documents(self, connection_id: int, contact_id: str,
                           resources: tuple[str, ...] = MONEY_RESOURCES) -> dict[str, list[dict]]:
        """Every stored record of ``resources`` that belongs to this contact, by resource, in one query
        (the contact_id index), however many there are. Absent resources map to empty lists."""
        return self.customers_documents(connection_id, [contact_id], resources)[contact_id]

    def customers_documents(self, connection_id: int, contact_ids: list[str],
                            resources: tuple[str, ...] = MONEY_RESOURCES, *,
                            without_lines: bool = False,
                            only_keys: tuple[str, ...] | None = None) -> dict[str, dict[str, list[dict]]]:
        """``customer_documents`` for several contacts, in one query per 500 contacts: one index probe per
        contact (``db.probe_by_key``), so a batch reads its customers' rows and no others however stale the
        table's statistics (a plain IN list read a whole connection's snapshots per batch on a table grown from
        empty). ``without_lines``: each document without its LineItems, left out by the database (most of an
        invoice's size, and nothing the money figures read), so they are neither sent nor decoded.
        ``only_keys`` (with ``without_lines``): on PostgreSQL each document cut down to those of its top-level
        keys (the money figures' ``MONEY_DOCUMENT_KEYS``), the rest neither sent nor decoded; elsewhere the
        documents without their lines."""
        wanted = list(dict.fromkeys(contact_ids))
        found = {contact: {resource: [] for resource in resources} for contact in wanted}
        rows = []
        with session_scope(self._sessions) as session:
            connection = core_connection(session)
            shape = (connection.dialect.name, without_lines, only_keys)
            statement = _documents_statements.get(shape)
            if statement is None:
                statement = _documents_statements[shape] = _documents_statement(*shape)
            for start in range(0, len(wanted), 500):
                rows += connection.execute(statement, {"connection_id": connection_id, "resources": list(resources),
                                                       "probe_keys": wanted[start:start + 500]})
        for row in sorted(rows, key=lambda r: (r.contact_id, r.resource, r.xero_id)):
            found[row.contact_id][row.resource].append(row.payload)
        return found

    def contacts_with(self, connection_id: int, resource: str = "invoices") -> list[str]:
        """The contacts that have at least one stored record of ``resource`` (the contact_id index)."""
        with session_scope(self._sessions) as session:
            return list(session.scalars(
                select(XeroSnapshot.contact_id).where(
                    XeroSnapshot.connection_id == connection_id, XeroSnapshot.resource == resource,
                    XeroSnapshot.contact_id.is_not(None),
                ).distinct().order_by(XeroSnapshot.contact_id)
            ))

    def search(self, text: str, *, connection_ids: list[int], limit: int = 20) -> list[Snapshot]:
        """Snapshots a person looks for (the console's record search), at most ``limit``, newest first: the
        record with this Xero id (the unique key's index, per connection and resource), else invoices and
        credit notes with this number, contacts with this email, and contacts whose name contains the text
        (PostgreSQL with pg_trgm, from 3 characters) or starts with it (elsewhere), any case. Each is one read
        of its indexed search column (filled on every upsert, ``search_keys``), at most ``limit`` rows: no
        payload is read to decide a match, so a search that finds nothing costs a few index probes."""
        text = text.strip()
        if not text or not connection_ids:
            return []
        with session_scope(self._sessions) as session:
            by_id = session.scalars(select(XeroSnapshot).where(
                XeroSnapshot.connection_id.in_(connection_ids), XeroSnapshot.resource.in_(SEARCHED_RESOURCES),
                XeroSnapshot.xero_id == text).limit(limit)).all()
            if by_id:
                return [_snapshot(row) for row in by_id]
            key = search_key(text)
            found = {}
            for matches in (XeroSnapshot.search_number == key, XeroSnapshot.search_email == key,
                            self._name_match(session, key)):
                found.update((row.id, row) for row in session.scalars(select(XeroSnapshot).where(
                    matches, XeroSnapshot.connection_id.in_(connection_ids),
                ).order_by(XeroSnapshot.source_updated_at.desc()).limit(limit)))
            newest = sorted(found.values(), key=lambda row: row.source_updated_at, reverse=True)[:limit]
            return [_snapshot(row) for row in newest]

    def _name_match(self, session: Session, key: str):
        """Names containing ``key`` through the trigram index where migration 0017 could make it (a pattern of
        fewer than 3 characters has no trigram to look up, so it matches a prefix), else names starting with it."""
        if session.get_bind().dialect.name != "postgresql":
            # SQLite compares text bytewise (BINARY), so a prefix is a range of its plain index; LIKE would
            # fold case and skip the index.
            return (XeroSnapshot.search_name >= key) & (XeroSnapshot.search_name < key + "\U0010ffff")
        if self._has_trigram_index is None:
            self._has_trigram_index = session.execute(
                text_sql("SELECT 1 FROM pg_indexes WHERE indexname = :name"),
                {"name": SEARCH_NAME_TRIGRAM_INDEX}).first() is not None
        # Backslash is PostgreSQL's LIKE escape by default; an explicit ESCAPE clause would hide the pattern's
        # constant prefix from the planner (https://www.postgresql.org/docs/current/functions-matching.html).
        literal_key = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if self._has_trigram_index and len(key) >= 3:
            return XeroSnapshot.search_name.like(f"%{literal_key}%")
        return XeroSnapshot.search_name.like(f"{literal_key}%")

    def get(self, connection_id: int, resource: str, xero_id: str) -> Snapshot | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(
                select(XeroSnapshot).where(
                    XeroSnapshot.connection_id == connection_id,
                    XeroSnapshot.resource == resource,
                    XeroSnapshot.xero_id == xero_id,
                )
            ).one_or_none()
            return None if row is None else _snapshot(row)


def _documents_statement(dialect_name: str, without_lines: bool, only_keys: tuple[str, ...] | None):
    """``customers_documents``' query: a customer's documents of some resources, by one probe per customer."""
    payload = XeroSnapshot.payload
    # Keys are written into the statement, so only plain names are taken.
    if only_keys and not all(key.isidentifier() for key in only_keys):
        raise ValueError(f"only_keys must be plain names: {only_keys!r}")
    if only_keys and dialect_name == "postgresql":
        # The wanted keys present (a missing key stays missing, a null stays null): jsonb_each and
        # jsonb_object_agg (https://www.postgresql.org/docs/current/functions-json.html).
        keys = ", ".join(f"'{key}'" for key in only_keys)
        payload = type_coerce(literal_column(
            "(SELECT coalesce(jsonb_object_agg(kept.key, kept.value), '{}'::jsonb) "
            f"FROM jsonb_each(xero_snapshots.payload) AS kept WHERE kept.key IN ({keys}))"), JsonDocument)
    elif without_lines:
        # jsonb's "-" drops a key without parsing anything (https://www.postgresql.org/docs/current/functions-json.html);
        # SQLite's json_remove (https://www.sqlite.org/json1.html#jrm).
        payload = (payload.op("-")(literal("LineItems")) if dialect_name == "postgresql"
                   else func.json_remove(payload, "$.LineItems"))
        payload = type_coerce(payload, JsonDocument)
    statement = select(XeroSnapshot.contact_id, XeroSnapshot.resource, XeroSnapshot.xero_id,
                       payload.label("payload")).where(
        XeroSnapshot.connection_id == bindparam("connection_id"),
        XeroSnapshot.resource.in_(bindparam("resources", expanding=True)))
    return probe_by_key(dialect_name, statement, XeroSnapshot.contact_id, unique=False)


# Built once per dialect and shape, as db.probe_rows' statements.
_documents_statements: dict[tuple, Any] = {}


def _snapshot(row) -> Snapshot:
    """From an ORM object or a Core row of the table."""
    return from_row(Snapshot, row)


class SnapshotReads(BatchReads):
    """The snapshots one batch of records reads, fetched together; writes go to the store."""

    def put_if_newer(self, connection_id: int, resource: str, xero_id: str, **values) -> bool:
        self.forget(connection_id, resource, [xero_id])
        return self._store.put_if_newer(connection_id, resource, xero_id, **values)

    def put_many_if_newer(self, connection_id: int, resource: str, records) -> set[str]:
        self.forget(connection_id, resource, [xero_id for xero_id, _, _ in records])
        return self._store.put_many_if_newer(connection_id, resource, records)
