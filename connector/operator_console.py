"""What the operator console (webhooks/console/) shows and changes, read from the store and Redis.

The receiver stays thin: every console page asks ``ConsoleData`` and renders the answer; its forms call
back here (dismiss) or enqueue a task (replay). Nothing here calls Xero or Zoho.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.errors import ConfigError, DataError, InvalidArgument
from connector.mapping.invoices import map_invoice
from connector.mapping.overrides import apply_field_overrides
from connector.mapping.zoho_records import as_written, zoho_contact_records
from connector.mapping_config import SyncConfig, parse_sync_config
from connector.pipeline.account_money import map_contact_as_pushed
from connector.pipeline.common import ID_FIELDS, RECORD_TYPES
from connector.replay import Failure, dismiss, list_failures, parse_since, replays_of, resource_of
from connector.status import collect_status
from connector.store.audit import AuditEntry

SEARCH_LIMIT = 20
FAILURES_LIMIT = 500
MAPPING_FILES = ("mapping.yaml", "mapping.yml", "mapping.json")
# The Zoho module a linked Xero record became (connector/pipeline/to_zoho: the id links' kinds).
ZOHO_MODULE_OF = {"contact": "Accounts", "invoice": "Invoices"}
# Ages the failures page filters by: failed within the last ...
AGES = {"1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days"}


def zoho_record_url(connection, module: str, zoho_id: str, *, accounts_url: str = "https://accounts.zoho.com"
                    ) -> str | None:
    """Where a person opens a Zoho CRM record, in the org's data centre: the CRM web app is on the host of
    the accounts server with "crm" for "accounts" (https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html
    lists the accounts servers per data centre), the record at /crm/org<org id>/tab/<module>/<record id>
    (/crm/tab/... when the org id is not recorded). UNVERIFIED: Zoho documents no record-page URL; the path is
    what the CRM web app shows in the address bar. A real org would confirm it by opening a linked record from
    the console. Any other host (the sandbox) keeps its own."""
    if not connection or not zoho_id:
        return None
    # The connection's own data centre (recorded when Zoho was connected), else the configured one.
    base = (connection.zoho_accounts_url or accounts_url).rstrip("/")
    parts = urlsplit(base)
    host = parts.hostname or ""
    if host.startswith("accounts."):
        base = f"{parts.scheme}://crm.{host[len('accounts.'):]}"
    org = f"/org{connection.zoho_org_id}" if connection.zoho_org_id else ""
    return f"{base}/crm{org}/tab/{module}/{zoho_id}"


def record_label(resource: str, payload: dict[str, Any]) -> str:
    """How a person names a Xero record: an invoice's number, a contact's name, else its type and date."""
    for key in ("InvoiceNumber", "CreditNoteNumber", "Name", "Reference"):
        if payload.get(key):
            return str(payload[key])
    return f"{RECORD_TYPES.get(resource, resource)} {payload.get('Date') or ''}".strip()


@dataclass(frozen=True)
class FoundRecord:
    connection_id: int
    record_type: str
    xero_id: str
    label: str
    detail: str  # the contact's email or an invoice's contact name
    updated_at: datetime | None


@dataclass
class RecordView:
    connection_id: int
    record_type: str
    xero_id: str
    label: str | None
    trail: list[AuditEntry]
    zoho_module: str | None = None
    zoho_id: str | None = None
    zoho_url: str | None = None
    snapshot_at: datetime | None = None


@dataclass
class MappingView:
    path: str | None  # the active file, None when the defaults apply
    text: str | None
    errors: list[str] = field(default_factory=list)


@dataclass
class MappingPreview:
    resource: str
    xero_id: str
    source: dict[str, Any] | None = None
    records: dict[str, Any] = field(default_factory=dict)  # Zoho module → the record(s) as written
    problem: str | None = None


class ConsoleData:
    """The console's reads over one process's deps (workers/deps.Deps: store, credentials, Redis, settings)."""

    def __init__(self, deps) -> None:
        self.deps = deps

    @property
    def store(self):
        return self.deps.store

    def now(self) -> datetime:
        return self.store.clock.now()

    # -- connections -------------------------------------------------------------------------------

    def connections(self) -> dict[str, Any]:
        """``connector status`` (connector/status.py): per connection tokens' and channels' expiries (never a
        token), the Xero day budget, parked and failed counts, the last sync per record type; the queues."""
        return collect_status(self.deps)

    def connection_ids(self) -> list[int]:
        return [c.id for c in self.store.connections.all()]

    # -- records -----------------------------------------------------------------------------------

    def search(self, text: str) -> list[FoundRecord]:
        """Records by Xero id, invoice or credit note number, contact email or name (SnapshotStore.search, at
        most SEARCH_LIMIT); a Xero id with no snapshot (it failed before it was fetched) by its audit trail."""
        text = (text or "").strip()
        if not text:
            return []
        ids = self.connection_ids()
        found = [FoundRecord(s.connection_id, RECORD_TYPES[s.resource], s.xero_id, record_label(s.resource, s.payload),
                             _detail_of(s.payload), s.source_updated_at)
                 for s in self.store.snapshots.search(text, connection_ids=ids, limit=SEARCH_LIMIT)]
        if not found and len(text) <= 128:
            for connection_id in ids:  # one indexed read per connection and record type
                for record_type in RECORD_TYPES.values():
                    if self.store.audit.latest_stage(connection_id, record_type, text) is not None:
                        found.append(FoundRecord(connection_id, record_type, text, text, "not fetched yet", None))
        return found

    def record(self, connection_id: int, record_type: str, xero_id: str) -> RecordView:
        resource = resource_of(record_type)
        record_type = RECORD_TYPES[resource]
        snapshot = self.store.snapshots.get(connection_id, resource, xero_id)
        view = RecordView(connection_id, record_type, xero_id,
                          record_label(resource, snapshot.payload) if snapshot else None,
                          self.store.audit.trail(connection_id, record_type, xero_id),
                          snapshot_at=snapshot.source_updated_at if snapshot else None)
        module = ZOHO_MODULE_OF.get(record_type)
        link = self.store.links.get(connection_id, record_type, xero_id) if module else None
        if link is not None:
            view.zoho_module, view.zoho_id = link.zoho_module, link.zoho_id
            view.zoho_url = zoho_record_url(self.store.connections.get(connection_id), link.zoho_module, link.zoho_id,
                                            accounts_url=self.deps.settings.zoho_accounts_url)
        return view

    # -- failures ----------------------------------------------------------------------------------

    def failures(self, *, connection: str | None = None, record: str | None = None, error: str | None = None,
                 age: str | None = None, limit: int = FAILURES_LIMIT) -> list[Failure]:
        """``connector failures`` with the console's filters (empty ones ignored); InvalidArgument says what
        is wrong with one."""
        connection_id = None
        if connection:
            try:
                connection_id = int(connection)
            except ValueError:
                raise InvalidArgument(f"connection must be a connection number; got {connection!r}") from None
        if age and age not in AGES:
            raise InvalidArgument(f"age must be one of {', '.join(AGES)}; got {age!r}")
        return list_failures(self.store, connection_id=connection_id, record=record or None, error=error or None,
                             since=parse_since(age, now=self.now()) if age else None, limit=limit)

    def selected(self, keys: list[str], **filters) -> list[Failure]:
        """The failures listed under ``filters`` whose keys (``failure_key``) are among ``keys``."""
        wanted = set(keys)
        return [f for f in self.failures(**filters) if failure_key(f) in wanted]

    def replay_requests(self, failures: list[Failure]):
        return replays_of(self.store, failures)

    def dismiss(self, failures: list[Failure], reason: str) -> int:
        return dismiss(self.store, failures, reason=reason, by="console")

    # -- mapping -----------------------------------------------------------------------------------

    def mapping(self) -> MappingView:
        """The active mapping file and its validation (connector/mapping_config.py), read now: an edit shows
        on the next page load, while the processes keep the copy they validated when they started."""
        data_dir = Path(self.deps.settings.data_dir)
        for name in MAPPING_FILES:
            path = data_dir / name
            if path.exists():
                text = path.read_text(encoding="utf-8")
                try:
                    parse_sync_config(text, source=name)
                except ConfigError as exc:
                    return MappingView(str(path), text, [part.strip() for part in str(exc).split("; ")])
                return MappingView(str(path), text)
        return MappingView(None, None)

    def preview(self, connection_id: int, record_type: str, xero_id: str) -> MappingPreview:
        """How one stored Xero record maps to Zoho under the active mapping: the pure mapping a push runs
        (connector/mapping), on the stored snapshot; nothing is written or fetched."""
        resource = resource_of(record_type)
        preview = MappingPreview(resource, xero_id)
        snapshot = self.store.snapshots.get(connection_id, resource, xero_id)
        if snapshot is None:
            preview.problem = (f"no stored {RECORD_TYPES[resource]} {xero_id} in connection #{connection_id}: "
                               "the connector keeps what it fetched (search on the Records page)")
            return preview
        preview.source = snapshot.payload
        config = self._config_or_problem(preview)
        if config is None:
            return preview
        try:
            preview.records = map_one(self.store, connection_id, resource, snapshot.payload, config,
                                      today=self.now().date())
        except DataError as exc:
            preview.problem = f"this record cannot be mapped: {exc}"
        return preview

    def _config_or_problem(self, preview: MappingPreview) -> SyncConfig | None:
        view = self.mapping()
        if view.errors:
            preview.problem = "the mapping file has errors (above): fix them to preview with it"
            return None
        return parse_sync_config(view.text, source="mapping") if view.text is not None else SyncConfig()


def map_one(store, connection_id: int, resource: str, payload: dict, config: SyncConfig, *, today: date) -> dict:
    """The Zoho record(s) one Xero record becomes, as a push writes them; lookups to records not known yet
    are shown as placeholders."""
    if resource == "contacts":
        mapped = map_contact_as_pushed(store.snapshots, connection_id, payload, config, today=today)
        link = store.links.get(connection_id, "contact", str(payload.get(ID_FIELDS[resource])))
        account, people = zoho_contact_records(mapped, payload, config,
                                               account_zoho_id=link.zoho_id if link else "(the Account's id)")
        return {"Accounts": account, "Contacts": people}
    if resource == "invoices":
        codes = {str(line.get("ItemCode")) for line in payload.get("LineItems") or [] if line.get("ItemCode")}
        products = {code: (link.zoho_id if (link := store.links.get(connection_id, "item", code)) else
                           f"(the Product {code})") for code in sorted(codes)}
        record = map_invoice(payload, product_ids=products, placeholder_product_id="(the placeholder Product)",
                             allow_bills=config.sync_bills, status_map=config.invoice_status)
        contact = (payload.get("Contact") or {}).get("ContactID")
        link = store.links.get(connection_id, "contact", str(contact)) if contact else None
        record["Account_Name"] = {"id": link.zoho_id if link else "(the Account's id)"}
        return {"Invoices": as_written("Invoices", apply_field_overrides(record, payload, "Invoices",
                                                                           config.field_overrides), config)}
    return {}  # payments and credit notes have no Zoho record: they re-push the invoices and contact they touch


def failure_key(failure: Failure) -> str:
    """A failure's key in the console's forms: connection (or "-"), record type and Xero id."""
    return f"{failure.connection_id if failure.connection_id is not None else '-'}|{failure.record_type}|" \
           f"{failure.record_id}"


def _detail_of(payload: dict[str, Any]) -> str:
    if payload.get("EmailAddress"):
        return str(payload["EmailAddress"])
    contact = payload.get("Contact")
    return str(contact.get("Name") or "") if isinstance(contact, dict) else ""
