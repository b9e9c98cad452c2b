"""Connections: one Xero organisation paired with one Zoho CRM org, and its health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import from_row, session_scope, single_statement
from connector.store.tables import CONNECTION_STATES, Connection


@dataclass(frozen=True)
class ConnectionInfo:
    id: int
    name: str
    xero_tenant_id: str
    xero_tenant_name: str
    zoho_org_id: str | None
    zoho_api_domain: str | None
    zoho_accounts_url: str | None
    state: str
    state_reason: str | None
    xero_daily_limit: int
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def zoho_connected(self) -> bool:
        """The Zoho connect (or link) flow records the org; until then, Zoho-bound work waits for it."""
        return self.zoho_org_id is not None

    of = classmethod(from_row)  # from an ORM object or a Core row of the table


# Core reads of the row (built once): every task looks its connection up, and ORM objects cost more to make.
_connections = Connection.__table__
_BY_ID = select(_connections).where(_connections.c.id == bindparam("id"))
_BY_TENANT = select(_connections).where(_connections.c.xero_tenant_id == bindparam("tenant_id"))
_ALL = select(_connections).order_by(_connections.c.id)


class ConnectionStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def create(
        self, *, name: str, xero_tenant_id: str, xero_tenant_name: str = "", xero_daily_limit: int = 5000
    ) -> ConnectionInfo:
        """Add a connection, or return the existing one for this Xero tenant (reconnects are common)."""
        existing = self.by_tenant(xero_tenant_id)
        if existing is not None:
            return existing
        now = self._clock.now()
        try:
            with session_scope(self._sessions) as session:
                row = Connection(
                    name=name,
                    xero_tenant_id=xero_tenant_id,
                    xero_tenant_name=xero_tenant_name,
                    xero_daily_limit=xero_daily_limit,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                return ConnectionInfo.of(row)
        except IntegrityError:
            # Another process created it between our look-up and insert.
            winner = self.by_tenant(xero_tenant_id)
            if winner is None:
                raise
            return winner

    def get(self, connection_id: int) -> ConnectionInfo | None:
        with single_statement(self._sessions) as connection:
            row = connection.execute(_BY_ID, {"id": connection_id}).one_or_none()
        return ConnectionInfo.of(row) if row else None

    def by_tenant(self, tenant_id: str) -> ConnectionInfo | None:
        with single_statement(self._sessions) as connection:
            row = connection.execute(_BY_TENANT, {"tenant_id": tenant_id}).one_or_none()
        return ConnectionInfo.of(row) if row else None

    def all(self) -> list[ConnectionInfo]:
        with single_statement(self._sessions) as connection:
            return [ConnectionInfo.of(row) for row in connection.execute(_ALL)]

    def set_state(self, connection_id: int, state: str, reason: str | None = None) -> None:
        if state not in CONNECTION_STATES:
            raise ValueError(f"state must be one of {CONNECTION_STATES}, not {state!r}")
        with session_scope(self._sessions) as session:
            row = self._require(session, connection_id)
            row.state = state
            row.state_reason = reason
            row.updated_at = self._clock.now()

    def mark_needs_reauth(self, connection_id: int, reason: str) -> bool:
        """Mark the connection as waiting for a person; True only for the call that changed the state,
        so the error is logged once however many workers hit the lost grant."""
        with session_scope(self._sessions) as session:
            result = session.execute(
                update(Connection)
                .where(Connection.id == connection_id, Connection.state != "needs_reauth")
                .values(state="needs_reauth", state_reason=reason, updated_at=self._clock.now())
            )
            return result.rowcount == 1

    def set_zoho(
        self,
        connection_id: int,
        *,
        org_id: str | None = None,
        api_domain: str | None = None,
        accounts_url: str | None = None,
    ) -> None:
        """Record the Zoho side; arguments left as None keep their stored value."""
        with session_scope(self._sessions) as session:
            row = self._require(session, connection_id)
            if org_id is not None:
                row.zoho_org_id = org_id
            if api_domain is not None:
                row.zoho_api_domain = api_domain.rstrip("/")
            if accounts_url is not None:
                row.zoho_accounts_url = accounts_url.rstrip("/")
            row.updated_at = self._clock.now()

    @staticmethod
    def _require(session: Session, connection_id: int) -> Connection:
        row = session.get(Connection, connection_id)
        if row is None:
            raise LookupError(f"no connection with id {connection_id}")
        return row
