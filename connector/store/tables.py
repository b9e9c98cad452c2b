"""The schema, as SQLAlchemy 2.0 typed models. Migrations in ``migrations/versions`` create it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every database.

    SQLite keeps no offset, so values are stored as naive UTC there and given their zone back
    on the way out. Naive input is refused: guessing its zone is how timestamps go wrong.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the store; pass a timezone-aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None or value.tzinfo is timezone.utc:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

CONNECTION_STATES = ("active", "needs_reauth", "disabled")
SYSTEMS = ("xero", "zoho")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Deterministic constraint names, so a later migration can drop or alter them on any database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JsonDocument}


class Connection(Base):
    """One Xero organisation paired with one Zoho CRM org."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    xero_tenant_id: Mapped[str] = mapped_column(String(64), unique=True)
    xero_tenant_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    zoho_org_id: Mapped[str | None] = mapped_column(String(64))
    zoho_api_domain: Mapped[str | None] = mapped_column(String(255))
    zoho_accounts_url: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    state_reason: Mapped[str | None] = mapped_column(Text)
    xero_daily_limit: Mapped[int] = mapped_column(Integer, default=5000, server_default="5000")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Credential(Base):
    """One system's OAuth token set for a connection, encrypted as a whole by the vault."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("connection_id", "system", name="uq_credentials_connection_system"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(10))
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[datetime | None]
    # Compare-and-swap counter: a writer states the version it read, and loses if it moved on.
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdLink(Base):
    """Which Zoho record a Xero record became, and the hash of what was last written."""

    __tablename__ = "id_links"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "xero_id", name="uq_id_links_connection_kind_xero"),
        # Led by the Zoho id: led by connection_id it also matched lookups by Xero id, and with stale
        # statistics the planner read every link of the connection through it.
        Index("ix_id_links_zoho", "zoho_id", "zoho_module", "connection_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    xero_id: Mapped[str] = mapped_column(String(300))
    zoho_module: Mapped[str] = mapped_column(String(64))
    zoho_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(128))
    source_updated_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WonDealInvoice(Base):
    """The one Xero invoice a won Zoho deal became (pipeline/to_xero/deals.py). One row per deal, ever: the
    row is claimed (``creating``) before the Xero create, so a second attempt knows one may have landed.
    ``state``: creating (sent, answer not seen yet), created (in its won stage), left (moved out of it
    after the invoice was made, reported once)."""

    __tablename__ = "won_deal_invoices"
    __table_args__ = (UniqueConstraint("connection_id", "deal_id", name="uq_won_deal_invoices_connection_deal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    deal_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    invoice_id: Mapped[str | None] = mapped_column(String(64))
    invoice_number: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One stage of one record's journey. Append-only, but for the count of a run of retries (``times``)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_record", "connection_id", "record_type", "record_id"),
        Index("ix_audit_events_created_at", "created_at"),  # retention deletes the oldest rows first
        # Failures listed and counted per connection and age: only failed rows, few among millions.
        Index("ix_audit_events_failed", "connection_id", "created_at", postgresql_where=text("stage = 'failed'"),
              sqlite_where=text("stage = 'failed'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: the trail must be writable even for a tenant we do not (or no longer) know.
    connection_id: Mapped[int | None] = mapped_column(Integer)
    sync_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(20))
    record_type: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any] | None]
    task_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How many times in a row the record reached this stage (a run of retries is one row), the last when.
    times: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[datetime | None]


class XeroSnapshot(Base):
    """The newest version of a Xero record we have fetched (newest ``source_updated_at`` wins)."""

    __tablename__ = "xero_snapshots"
    __table_args__ = (
        UniqueConstraint("connection_id", "resource", "xero_id", name="uq_xero_snapshots_connection_resource_xero"),
        # A customer's documents, read together for their money figures (SnapshotStore.customer_documents).
        Index("ix_xero_snapshots_contact", "connection_id", "contact_id", "resource"),
        # The console's record search (SnapshotStore.search), by exact number or email and by a name's prefix
        # (text_pattern_ops: LIKE 'prefix%' whatever the database's collation). Migration 0017 adds a pg_trgm
        # index for a part of a name when the extension can be had (SEARCH_NAME_TRIGRAM_INDEX).
        Index("ix_xero_snapshots_search_number", "search_number", "connection_id"),
        Index("ix_xero_snapshots_search_email", "search_email", "connection_id"),
        Index("ix_xero_snapshots_search_name", "search_name", postgresql_ops={"search_name": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(40))
    xero_id: Mapped[str] = mapped_column(String(64))
    # The Xero contact the record belongs to (the contact itself for a contact), from its payload.
    contact_id: Mapped[str | None] = mapped_column(String(64))
    source_updated_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    # What the console's search matches, case folded, from the payload on every upsert (snapshots.search_keys):
    # an invoice's or credit note's number, a contact's email and name.
    search_number: Mapped[str | None] = mapped_column(String(255))
    search_email: Mapped[str | None] = mapped_column(String(255))
    search_name: Mapped[str | None] = mapped_column(String(255))
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


# Created by migration 0017 only where pg_trgm could be had (so not in the models): a part of a contact's name.
SEARCH_NAME_TRIGRAM_INDEX = "ix_xero_snapshots_search_name_trgm"


class InvoiceDeal(Base):
    """Which Zoho deal each Xero invoice belongs to, and the rule that decided (connector/mapping/deals.py).

    ``deal_id`` is empty for an invoice no rule could place: ``connector deals unassigned`` lists them.
    """

    __tablename__ = "invoice_deals"
    __table_args__ = (
        UniqueConstraint("connection_id", "invoice_id", name="uq_invoice_deals_connection_invoice"),
        # A deal's invoices, read together for its figures (DealLinkStore.deals_invoices). Led by deal_id: led by
        # connection_id it also matched an invoice's lookup, and a planner without statistics took it (migration 0016).
        Index("ix_invoice_deals_deal", "deal_id", "connection_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    invoice_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    deal_id: Mapped[str | None] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class ZohoChannel(Base):
    """A Zoho CRM notification channel; only a hash of its verification token is kept."""

    __tablename__ = "zoho_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    events: Mapped[list[str]] = mapped_column(JsonDocument)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    renewed_at: Mapped[datetime | None]


class ParkedWork(Base):
    """Work that must wait: a connection needing a person, a spent daily budget or credit, an outage.

    Parked durably here rather than as hours-long countdown tasks; ``resume_after`` (or the
    connection becoming active again) decides when it goes back to the queues, and ``stage`` to
    which one: a Xero fetch, a Zoho push of the stored snapshot, or a Zoho notification.
    """

    __tablename__ = "parked_work"
    __table_args__ = (
        UniqueConstraint("connection_id", "resource", "record_id", name="uq_parked_work_connection_resource_record"),
        Index("ix_parked_work_resume", "connection_id", "resume_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    sync_id: Mapped[str | None] = mapped_column(String(64))
    resume_after: Mapped[datetime | None]
    parked_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str] = mapped_column(String(10), default="fetch", server_default="fetch")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # waits so far: the next is longer


# -- Zoho writes: echo suppression and writes whose id link is not saved yet ---------------------


class WriteLedgerEntry(Base):
    """A hash of the fields we last wrote to one record (``system`` "zoho": record_key is the Zoho id).

    A change notification whose record still hashes to this value is our own write coming back.
    """

    __tablename__ = "write_ledger"
    __table_args__ = (
        UniqueConstraint("connection_id", "system", "record_key", name="uq_write_ledger_connection_system_record"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(8))
    record_key: Mapped[str] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(128))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)


class WriteIntent(Base):
    """A Zoho write was started for a record that has no id link yet.

    Found on a later attempt (the answer was lost, or the worker died before saving the link), it
    says the record may already exist in Zoho, so the write must find it first instead of creating
    it again. Saving the id link clears it.
    """

    __tablename__ = "write_intents"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "xero_id", name="uq_write_intents_connection_kind_xero"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    xero_id: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- delta polling ------------------------------------------------------------------------------


class XeroPollCursor(Base):
    """How far the If-Modified-Since poll of one resource has read (Xero's UpdatedDateUTC)."""

    __tablename__ = "xero_poll_cursors"
    __table_args__ = (
        UniqueConstraint("connection_id", "resource", name="uq_xero_poll_cursors_connection_resource"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(40))
    modified_since: Mapped[datetime | None]
    polled_at: Mapped[datetime | None]
    swept_at: Mapped[datetime | None]


# -- token sets shared by several connections ----------------------------------------------------


class SharedCredential(Base):
    """A connection that uses another connection's token set for one system.

    One Xero consent covers several tenants with one rotating refresh token, and one Zoho org can
    receive several tenants; the token set is stored (and refreshed) once, under its owner.
    """

    __tablename__ = "shared_credentials"
    __table_args__ = (UniqueConstraint("connection_id", "system", name="uq_shared_credentials_connection_system"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(10))
    owner_connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))


# -- backfill -------------------------------------------------------------------------------------


class BackfillCheckpoint(Base):
    """How far the import of one resource's existing Xero records has got (connector/backfill.py).

    ``anchor`` is the If-Modified-Since of the next page request and ``page`` its page number; both move
    only once a page is stored and handed on. ``version`` makes each advance a compare-and-set, so two
    steps that raced for the same page cannot both move it."""

    __tablename__ = "backfill_checkpoints"
    __table_args__ = (
        UniqueConstraint("connection_id", "resource", name="uq_backfill_checkpoints_connection_resource"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(40))
    since: Mapped[datetime | None]
    anchor: Mapped[datetime | None]
    page: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20))  # running | waiting | done
    records: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    remaining: Mapped[int | None] = mapped_column(Integer)
    calls_per_day: Mapped[int | None] = mapped_column(Integer)
    resume_after: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
