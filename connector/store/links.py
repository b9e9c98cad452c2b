"""Id links: which Zoho record each Xero record became, and a hash of what we last wrote there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.db import dialect_insert, session_scope
from connector.store.tables import IdLink


@dataclass(frozen=True)
class Link:
    connection_id: int
    kind: str
    xero_id: str
    zoho_module: str
    zoho_id: str
    content_hash: str
    source_updated_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: IdLink) -> "Link":
        return cls(
            connection_id=row.connection_id,
            kind=row.kind,
            xero_id=row.xero_id,
            zoho_module=row.zoho_module,
            zoho_id=row.zoho_id,
            content_hash=row.content_hash,
            source_updated_at=row.source_updated_at,
            updated_at=row.updated_at,
        )


class LinkStore:
    def __init__(self, session_factory: sessionmaker[Session], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._clock = clock

    def get(self, connection_id: int, kind: str, xero_id: str) -> Link | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(
                select(IdLink).where(
                    IdLink.connection_id == connection_id, IdLink.kind == kind, IdLink.xero_id == xero_id
                )
            ).one_or_none()
            return Link.of(row) if row else None

    def save(
        self,
        connection_id: int,
        kind: str,
        xero_id: str,
        *,
        zoho_module: str,
        zoho_id: str,
        content_hash: str,
        source_updated_at: datetime | None = None,
    ) -> None:
        values = {
            "zoho_module": zoho_module,
            "zoho_id": zoho_id,
            "content_hash": content_hash,
            "source_updated_at": source_updated_at,
            "updated_at": self._clock.now(),
        }
        with session_scope(self._sessions) as session:
            statement = dialect_insert(session, IdLink).values(
                connection_id=connection_id, kind=kind, xero_id=xero_id, **values
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=[IdLink.connection_id, IdLink.kind, IdLink.xero_id], set_=values
                )
            )

    def by_zoho(self, connection_id: int, zoho_module: str, zoho_id: str) -> Link | None:
        with session_scope(self._sessions) as session:
            row = session.scalars(
                select(IdLink)
                .where(
                    IdLink.connection_id == connection_id,
                    IdLink.zoho_module == zoho_module,
                    IdLink.zoho_id == zoho_id,
                )
                .order_by(IdLink.id)
                .limit(1)
            ).first()
            return Link.of(row) if row else None

    def count(self, connection_id: int | None = None) -> int:
        statement = select(func.count()).select_from(IdLink)
        if connection_id is not None:
            statement = statement.where(IdLink.connection_id == connection_id)
        with session_scope(self._sessions) as session:
            return session.scalar(statement) or 0
