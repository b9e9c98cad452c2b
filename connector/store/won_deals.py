"""Won deal -> its one Xero invoice (table ``won_deal_invoices``): claimed before the Xero create, completed
with the invoice's id and number after, and the deal's later moves out of (and back into) its won stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, from_row, session_scope
from connector.store.tables import WonDealInvoice

CREATING = "creating"  # the create was sent (or is about to be); its answer not seen yet
CREATED = "created"
LEFT = "left"  # moved out of its won stage after the invoice was made (reported once)
STATES = (CREATING, CREATED, LEFT)


@dataclass(frozen=True)
class WonDeal:
    connection_id: int
    deal_id: str
    state: str
    invoice_id: str | None
    invoice_number: str | None
    started_at: datetime
    updated_at: datetime

    of = classmethod(from_row)  # from an ORM object or a Core row of the table


class WonDealInvoiceStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def get(self, connection_id: int, deal_id: str) -> WonDeal | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(select(WonDealInvoice).where(
                WonDealInvoice.connection_id == connection_id, WonDealInvoice.deal_id == deal_id)).one_or_none()
            return WonDeal.of(row) if row else None

    def claim(self, connection_id: int, deal_id: str) -> tuple[WonDeal, bool]:
        """The deal's row, made ``creating`` if it had none; (the row, True when this call made it)."""
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            statement = dialect_insert(session, WonDealInvoice).values(
                connection_id=connection_id, deal_id=deal_id, state=CREATING, started_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=[WonDealInvoice.connection_id, WonDealInvoice.deal_id])
            made = session.execute(statement).rowcount == 1
        return self.get(connection_id, deal_id), made

    def created(self, connection_id: int, deal_id: str, *, invoice_id: str, invoice_number: str | None) -> None:
        self._set(connection_id, deal_id, state=CREATED, invoice_id=invoice_id, invoice_number=invoice_number)

    def set_state(self, connection_id: int, deal_id: str, state: str) -> None:
        self._set(connection_id, deal_id, state=state)

    def release(self, connection_id: int, deal_id: str) -> None:
        """Xero refused the create outright (nothing made): the next attempt starts afresh."""
        with session_scope(self._sessions) as session:
            session.execute(delete(WonDealInvoice).where(
                WonDealInvoice.connection_id == connection_id, WonDealInvoice.deal_id == deal_id,
                WonDealInvoice.state == CREATING))

    def counts(self, connection_id: int) -> dict[str, int]:
        with session_scope(self._sessions) as session:
            rows = session.execute(select(WonDealInvoice.state, func.count()).where(
                WonDealInvoice.connection_id == connection_id).group_by(WonDealInvoice.state)).all()
        return {**dict.fromkeys(STATES, 0), **{state: int(n) for state, n in rows}}

    def _set(self, connection_id: int, deal_id: str, **values) -> None:
        with session_scope(self._sessions) as session:
            session.execute(update(WonDealInvoice).where(
                WonDealInvoice.connection_id == connection_id, WonDealInvoice.deal_id == deal_id,
            ).values(**values, updated_at=self._clock.now()))
