"""Invoice -> deal decisions (table ``invoice_deals``): the deal each Xero invoice belongs to, the rule that
decided, and the invoices no rule could place. A deal's invoices are read with their snapshots in one
query, however many there are (the ``ix_invoice_deals_deal`` index).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import insert_rows, probe_rows, session_scope
from connector.store.tables import InvoiceDeal, XeroSnapshot

_CHUNK = 500
_DECISION_COLUMNS = ["connection_id", "invoice_id", "deal_id", "rule", "reason", "contact_id", "decided_at"]


def _replace_decision(statement):
    """``save``'s upsert: a decision replaces the invoice's last."""
    return statement.on_conflict_do_update(
        index_elements=[InvoiceDeal.connection_id, InvoiceDeal.invoice_id],
        set_={name: statement.excluded[name] for name in _DECISION_COLUMNS[2:]})


class DealLinkStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def decisions(self, connection_id: int, invoice_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored decision of each invoice that has one: ``{"deal_id", "rule", "reason", "contact_id"}``."""
        wanted = list(dict.fromkeys(invoice_ids))
        found: dict[str, dict[str, Any]] = {}
        with session_scope(self._sessions) as session:
            for start in range(0, len(wanted), _CHUNK):
                # One probe per invoice (probe_rows): an IN list read the connection's every decision per batch
                # while the table's statistics lagged its growth.
                for row in probe_rows(session, InvoiceDeal.__table__, "invoice_id", wanted[start:start + _CHUNK],
                                      connection_id=connection_id):
                    found[row.invoice_id] = _view(row)
        return found

    def save(self, connection_id: int, decisions: Mapping[str, Mapping[str, Any]]) -> None:
        """Store each invoice's decision (``{"deal_id", "rule", "reason", "contact_id"}``), replacing the last."""
        if not decisions:
            return
        now = self._clock.now()
        rows = [{"connection_id": connection_id, "invoice_id": invoice_id, "deal_id": d.get("deal_id"),
                 "rule": d["rule"], "reason": d.get("reason") or "", "contact_id": d.get("contact_id"),
                 "decided_at": now} for invoice_id, d in decisions.items()]
        with session_scope(self._sessions) as session:
            for start in range(0, len(rows), _CHUNK):  # one statement per chunk (db.insert_rows)
                insert_rows(session, InvoiceDeal.__table__, _DECISION_COLUMNS, rows[start:start + _CHUNK],
                            on_conflict=_replace_decision)

    def unassigned(self, connection_id: int) -> list[dict[str, Any]]:
        """The invoices no rule placed (oldest decision first), for a person to link."""
        with session_scope(self._sessions) as session:
            rows = session.scalars(select(InvoiceDeal).where(
                InvoiceDeal.connection_id == connection_id, InvoiceDeal.deal_id.is_(None),
            ).order_by(InvoiceDeal.decided_at, InvoiceDeal.invoice_id))
            return [{"invoice_id": row.invoice_id, **_view(row)} for row in rows]

    def count_unassigned(self, connection_id: int | None = None) -> int:
        with session_scope(self._sessions) as session:
            query = select(InvoiceDeal.id).where(InvoiceDeal.deal_id.is_(None))
            if connection_id is not None:
                query = query.where(InvoiceDeal.connection_id == connection_id)
            return len(session.scalars(query).all())

    def deals_invoices(self, connection_id: int, deal_ids: Iterable[str]) -> dict[str, list[dict]]:
        """Each deal's linked invoices (their stored Xero payloads), in one query per 500 deals."""
        wanted = list(dict.fromkeys(deal_ids))
        found: dict[str, list[dict]] = {deal: [] for deal in wanted}
        with session_scope(self._sessions) as session:
            for start in range(0, len(wanted), _CHUNK):
                rows = session.execute(
                    select(InvoiceDeal.deal_id, XeroSnapshot.payload)
                    .join(XeroSnapshot, (XeroSnapshot.connection_id == InvoiceDeal.connection_id)
                          & (XeroSnapshot.resource == "invoices") & (XeroSnapshot.xero_id == InvoiceDeal.invoice_id))
                    .where(InvoiceDeal.connection_id == connection_id,
                           InvoiceDeal.deal_id.in_(wanted[start:start + _CHUNK]))
                    .order_by(InvoiceDeal.deal_id, InvoiceDeal.invoice_id))
                for deal_id, payload in rows:
                    found[deal_id].append(payload)
        return found

    def linked_deals(self, connection_id: int) -> list[str]:
        """Every deal at least one invoice belongs to (the ``ix_invoice_deals_deal`` index)."""
        with session_scope(self._sessions) as session:
            return list(session.scalars(select(InvoiceDeal.deal_id).where(
                InvoiceDeal.connection_id == connection_id, InvoiceDeal.deal_id.is_not(None),
            ).distinct().order_by(InvoiceDeal.deal_id)))

    def forget_deals(self, connection_id: int, deal_ids: Iterable[str], reason: str) -> list[str]:
        """Deals gone from Zoho: their invoices become unassigned; returns those invoices' ids."""
        wanted = list(dict.fromkeys(deal_ids))
        if not wanted:
            return []
        with session_scope(self._sessions) as session:
            invoices = list(session.scalars(select(InvoiceDeal.invoice_id).where(
                InvoiceDeal.connection_id == connection_id, InvoiceDeal.deal_id.in_(wanted))))
            session.execute(update(InvoiceDeal).where(
                InvoiceDeal.connection_id == connection_id, InvoiceDeal.deal_id.in_(wanted),
            ).values(deal_id=None, rule="unassigned", reason=reason, decided_at=self._clock.now()))
        return invoices


def _view(row) -> dict[str, Any]:  # an InvoiceDeal or a Core row of its table
    return {"deal_id": row.deal_id, "rule": row.rule, "reason": row.reason, "contact_id": row.contact_id}

