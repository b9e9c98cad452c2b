"""What every round of a Zoho push shares: its collaborators, the outcome of a batch, and the writes
each round makes the same way (upserts, id links, the write ledger, audit rows)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from connector.errors import DataError
from connector.mapping.hashing import content_hash
from connector.mapping.zoho_records import owned_projection
from connector.mapping_config import SyncConfig
from connector.store import audit as stages
from connector.store.links import LinkReads, LinkWrite
from connector.store.snapshots import SnapshotReads

log = logging.getLogger(__name__)

# Per-record Zoho codes worth another try; everything else is a data problem, audited "failed" at once.
RETRYABLE_CODES = frozenset({"INTERNAL_ERROR", "TOO_MANY_REQUESTS", "LOCKED_RECORD"})
WAITING_FOR_CONTACT = "WAITING_FOR_CONTACT"


@dataclass
class BatchOutcome:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, dict] = field(default_factory=dict)  # xero id -> reason, Zoho code
    retry: list[str] = field(default_factory=list)
    zoho_ids: dict[str, str] = field(default_factory=dict)  # xero id -> Zoho id of its main record

    def merge_failure(self, xero_id: str, detail: dict) -> None:
        if detail.get("error_code") in RETRYABLE_CODES or detail.get("error_code") == WAITING_FOR_CONTACT:
            if xero_id not in self.retry:
                self.retry.append(xero_id)
        self.failed[xero_id] = detail


def one_audit_write(method):
    """The audit rows a push makes are written together when it returns (or raises)."""

    @functools.wraps(method)
    def run(self: PushCore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._trail.flush()
    return run


@dataclass
class PushCore:
    connection_id: int
    snapshots: Any
    zoho: Any
    links: Any
    audit: Any
    ledger: Any
    locks: Any  # connector.record_locks.RecordLocks: one writer at a time per target record
    config: SyncConfig = field(default_factory=SyncConfig)
    invoices_enabled: bool = True  # False when the Zoho edition has no Invoices module
    # Fetches the given Xero resource ids into snapshots (returns the ids it found).
    refresh: Callable[[str, list[str]], list[str]] | None = None
    task_id: str | None = None
    org_fields: Mapping[str, frozenset[str]] | None = None  # per module, from zoho_setup.check_org
    # Makes a block whose store calls share one transaction (Store.transaction). A round's reads are one
    # transaction and the writes after each Zoho call another; never one around a call to Zoho.
    transaction: Callable[[], AbstractContextManager] = nullcontext
    # The day overdue is judged on (Accounts' money figures); UTC, see pipeline/account_money.py.
    today: Callable[[], date] = field(default=lambda: datetime.now(timezone.utc).date())
    # Links pushed invoices to deals, totals the deals and notes the payments (pipeline/deals.py); None: off.
    deals: Any = None

    def __post_init__(self) -> None:
        # A batch's database work, batched: links and snapshots read together (afresh under each round's
        # locks), links saved a loop at a time, audit rows written once per push.
        if not isinstance(self.links, LinkReads):
            self.links = LinkReads(self.links)
        if not isinstance(self.snapshots, SnapshotReads):
            self.snapshots = SnapshotReads(self.snapshots)
        self._trail = self.audit.batch()

    def fetched(self, resource: str, record_type: str, xero_ids: Iterable[str], sync_ids: Mapping,
                outcome: BatchOutcome) -> dict:
        """xero id -> snapshot, read together, each id once; an id with no snapshot fails."""
        wanted = list(dict.fromkeys(xero_ids))
        self.snapshots.prefetch(self.connection_id, resource, wanted)
        found = {}
        for xid in wanted:
            snapshot = self.snapshots.get(self.connection_id, resource, xid)
            if snapshot is None:
                self.fail(record_type, xid, sync_ids, outcome, {"reason": f"no fetched snapshot of this {record_type}"})
            else:
                found[xid] = snapshot
        return found

    def mapped(self, resource, record_type, xero_ids, sync_ids, outcome, mapper, summary) -> dict:
        """xero id -> (mapped, snapshot) of the records that have a snapshot and map; the others fail."""
        mapped = {}
        for xid, snapshot in self.fetched(resource, record_type, xero_ids, sync_ids, outcome).items():
            try:
                result = mapper(snapshot.payload)
            except DataError as exc:
                self.fail(record_type, xid, sync_ids, outcome, {"reason": str(exc), "field": exc.field})
                continue
            self.audit_stage(record_type, xid, sync_ids, stages.MAPPED, summary(result))
            mapped[xid] = (result, snapshot)
        return mapped

    def upsert(self, module: str, records: list[dict], key_field: str) -> list:
        if not records:
            return []
        known = (self.org_fields or {}).get(module)
        if known:
            records = [{k: v for k, v in r.items() if k in known or k == "id"} for r in records]
        return self.zoho.upsert(module, records, duplicate_check_fields=[key_field], trigger=self.config.trigger)

    def save_links(self, links: list[LinkWrite]) -> list[str]:
        """Save a loop's links in one statement; returns the xero ids whose link was newer (not saved)."""
        saved = self.links.save_many(self.connection_id, links)
        return list(dict.fromkeys(link.xero_id for link in links if (link.kind, link.xero_id) not in saved))

    def record_in_ledger(self, module: str, written: Mapping[str, dict]) -> None:
        """The CRM-owned fields we wrote, hashed: their Zoho notification is then known as our own echo."""
        owned = self.config.owned_by_crm(module)
        if owned and written:
            self.ledger.record_many(self.connection_id, "zoho", {
                zoho_id: content_hash(owned_projection(record, owned)) for zoho_id, record in written.items()})

    def rewrite_stale(self, stale: list[str], rewrite: Callable[[list[str]], list[str]], kind: str) -> None:
        """Ids whose link save met a newer version: our write may have landed after that newer one (a
        lease ran out under a very slow write), so the newest snapshot is written again, under the lock."""
        for _ in range(3):
            if not stale:
                return
            log.warning("zoho.rewrite_newer", extra={"kind": kind, "records": stale})
            again: list[str] = []
            with closing(self.locks.rounds(self.connection_id, kind, stale)) as rounds:
                for ids in rounds:
                    again += rewrite(ids)
            stale = again

    def audit_outcome(self, record_type: str, xero_ids: Iterable[str], outcome: BatchOutcome, sync_ids) -> None:
        for xid in xero_ids:
            if xid in outcome.failed:
                self.audit_failure(record_type, xid, sync_ids, outcome)
            else:
                stage = stages.WRITTEN if xid in outcome.written else stages.SKIPPED
                self.audit_stage(record_type, xid, sync_ids, stage, {"zoho_id": outcome.zoho_ids.get(xid)})

    def fail(self, record_type, xid, sync_ids, outcome: BatchOutcome, detail: dict, *, audit: bool = True) -> None:
        outcome.merge_failure(xid, detail)
        if audit:
            self.audit_failure(record_type, xid, sync_ids, outcome)

    def audit_failure(self, record_type: str, xid: str, sync_ids: Mapping, outcome: BatchOutcome) -> None:
        """A refusal that can pass on a later try is "retrying": the task tries it again alone, then parks it
        (workers/zoho_tasks.py); it is never given up. Any other failure is "failed"."""
        stage = stages.RETRYING if xid in outcome.retry else stages.FAILED
        self.audit_stage(record_type, xid, sync_ids, stage, outcome.failed[xid])

    def audit_stage(self, record_type: str, xid: str, sync_ids: Mapping, stage: str, detail: dict) -> None:
        self._trail.record(connection_id=self.connection_id, record_type=record_type, record_id=xid,
                           sync_id=sync_ids.get(xid), stage=stage, detail=detail, task_id=self.task_id)


def rejection(result, module: str) -> dict:
    """The failure detail of a record Zoho refused in a 207."""
    return {"reason": f"Zoho refused the {module} record: {result.error_text}", "error_code": result.code,
            "details": result.details}


def newer(link, snapshot) -> bool:
    """The link was written from a newer version of the Xero record than this snapshot."""
    return bool(link.source_updated_at and snapshot.source_updated_at
                and link.source_updated_at > snapshot.source_updated_at)
