"""Id links: which Zoho record each Xero record became, and a hash of what we last wrote there.

Each link also keeps the version of the Xero record it was written from (Xero's UpdatedDateUTC).
``save`` compares it inside one INSERT ... ON CONFLICT DO UPDATE ... WHERE, so when two writers race,
an older version never replaces a newer one, whatever order their saves arrive in.

Write intents mark a Zoho write started for a record that has no link yet; ``save`` clears them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from collections.abc import Iterable

from sqlalchemy import bindparam, delete, func, or_, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.batch_reads import BatchReads
from connector.store.db import core_connection, from_row, insert_rows, probe_rows, session_scope, upsert_where
from connector.store.tables import IdLink, WriteIntent


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

    of = classmethod(from_row)  # from an ORM object or a Core row of the table


@dataclass(frozen=True)
class LinkWrite:
    """One link to save (``LinkStore.save_many``)."""

    kind: str
    xero_id: str
    zoho_module: str
    zoho_id: str
    content_hash: str
    source_updated_at: datetime | None = None


def _version(link: LinkWrite) -> datetime:
    return link.source_updated_at or datetime.min.replace(tzinfo=timezone.utc)


_LINK_COLUMNS = ["connection_id", "kind", "xero_id", "zoho_module", "zoho_id", "content_hash", "source_updated_at",
                 "updated_at"]


def _keep_intent(statement):
    return statement.on_conflict_do_nothing(
        index_elements=[WriteIntent.connection_id, WriteIntent.kind, WriteIntent.xero_id])


def _update_if_not_older(statement):
    """``save``'s upsert for a batch of links, returning the (kind, xero id) of those saved."""
    return statement.on_conflict_do_update(
        index_elements=[IdLink.connection_id, IdLink.kind, IdLink.xero_id],
        set_={name: statement.excluded[name]
              for name in ("zoho_module", "zoho_id", "content_hash", "source_updated_at", "updated_at")},
        where=or_(
            IdLink.source_updated_at.is_(None),
            statement.excluded.source_updated_at.is_(None),
            IdLink.source_updated_at <= statement.excluded.source_updated_at,
        ),
    ).returning(IdLink.kind, IdLink.xero_id)


_intents = WriteIntent.__table__
_links = IdLink.__table__
_END_INTENTS = delete(_intents).where(_intents.c.connection_id == bindparam("connection_id"),
                                      tuple_(_intents.c.kind, _intents.c.xero_id).in_(bindparam("keys", expanding=True)))


class LinkReads(BatchReads):
    """The links one batch of records reads, fetched together; saves go straight to the store."""

    def save(self, connection_id: int, kind: str, xero_id: str, **values):
        self.forget(connection_id, kind, [xero_id])
        return self._store.save(connection_id, kind, xero_id, **values)

    def save_many(self, connection_id: int, links: list[LinkWrite]) -> set[tuple[str, str]]:
        for link in links:
            self.forget(connection_id, link.kind, [link.xero_id])
        return self._store.save_many(connection_id, links)


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

    def get_many(self, connection_id: int, kind: str, xero_ids: list[str]) -> dict[str, Link]:
        """The links of these ids (absent ones left out), in one query."""
        wanted = list(dict.fromkeys(xero_ids))
        if not wanted:
            return {}
        with session_scope(self._sessions) as session:
            rows = probe_rows(session, IdLink.__table__, "xero_id", wanted, connection_id=connection_id, kind=kind)
            return {row.xero_id: Link.of(row) for row in rows}

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
    ) -> bool:
        """Insert or update the link; False when the stored link was written from a newer version.

        Equal versions overwrite (a rewrite of the same version is harmless); a link or a save
        without a version (products) is not compared.
        """
        values = {
            "zoho_module": zoho_module,
            "zoho_id": zoho_id,
            "content_hash": content_hash,
            "source_updated_at": source_updated_at,
            "updated_at": self._clock.now(),
        }
        with session_scope(self._sessions) as session:
            saved = upsert_where(
                session, IdLink, {"connection_id": connection_id, "kind": kind, "xero_id": xero_id}, values,
                lambda excluded: or_(IdLink.source_updated_at.is_(None), excluded.source_updated_at.is_(None),
                                     IdLink.source_updated_at <= excluded.source_updated_at))
            session.execute(delete(WriteIntent).where(
                WriteIntent.connection_id == connection_id, WriteIntent.kind == kind, WriteIntent.xero_id == xero_id))
            return saved

    def begin_writes(self, connection_id: int, kind: str, xero_ids: Iterable[str]) -> None:
        """Note that a Zoho write of these records (which have no link yet) is about to start."""
        wanted = list(dict.fromkeys(xero_ids))
        if not wanted:
            return
        now = self._clock.now()
        columns = ["connection_id", "kind", "xero_id", "started_at"]
        with session_scope(self._sessions) as session:  # one statement for the batch
            insert_rows(session, WriteIntent.__table__, columns, [
                {"connection_id": connection_id, "kind": kind, "xero_id": xero_id, "started_at": now}
                for xero_id in wanted], on_conflict=_keep_intent)

    def end_writes(self, connection_id: int, kind: str, xero_ids: Iterable[str]) -> None:
        """Zoho refused these records outright: nothing was created, so no later attempt need look."""
        wanted = list(dict.fromkeys(xero_ids))
        if not wanted:
            return
        with session_scope(self._sessions) as session:
            session.execute(delete(WriteIntent).where(
                WriteIntent.connection_id == connection_id, WriteIntent.kind == kind, WriteIntent.xero_id.in_(wanted)))

    def writes_begun(self, connection_id: int, kind: str, xero_ids: Iterable[str]) -> set[str]:
        """Those of ``xero_ids`` whose earlier Zoho write may have landed without its link being saved."""
        wanted = list(dict.fromkeys(xero_ids))
        if not wanted:
            return set()
        with session_scope(self._sessions) as session:
            return {row.xero_id for row in probe_rows(session, WriteIntent.__table__, "xero_id", wanted,
                                                      connection_id=connection_id, kind=kind)}

    def save_many(self, connection_id: int, links: list["LinkWrite"]) -> set[tuple[str, str]]:
        """``save`` for a batch of links in one statement and one transaction; returns the (kind, xero id)
        of those saved. A link already written from a newer version of its Xero record keeps it."""
        newest: dict[tuple[str, str], LinkWrite] = {}
        for link in links:  # one row per key: a statement may not update the same row twice
            known = newest.get((link.kind, link.xero_id))
            if known is None or _version(known) <= _version(link):
                newest[(link.kind, link.xero_id)] = link
        if not newest:
            return set()
        now = self._clock.now()
        rows = [{"connection_id": connection_id, "kind": link.kind, "xero_id": link.xero_id,
                 "zoho_module": link.zoho_module, "zoho_id": link.zoho_id, "content_hash": link.content_hash,
                 "source_updated_at": link.source_updated_at, "updated_at": now} for link in newest.values()]
        with session_scope(self._sessions) as session:  # one statement for the batch
            saved = {(kind, xero_id) for kind, xero_id in insert_rows(session, IdLink.__table__, _LINK_COLUMNS, rows,
                                                                       on_conflict=_update_if_not_older)}
            # As ``save``: a link written (or found newer) ends the record's write intent. A Core DELETE: nothing
            # reads write intents as ORM objects, so there is no identity map to keep in step.
            core_connection(session).execute(_END_INTENTS, {"connection_id": connection_id, "keys": list(newest)})
            return saved

    def by_zoho_ids(self, connection_ids: Iterable[int], zoho_module: str, zoho_ids: Iterable[str]) -> list[Link]:
        """The links of these connections to these Zoho records (oldest first), in one query: which of
        the connections sharing a Zoho org holds each record."""
        connections, wanted = list(dict.fromkeys(connection_ids)), list(dict.fromkeys(zoho_ids))
        if not connections or not wanted:
            return []
        with session_scope(self._sessions) as session:
            rows = core_connection(session).execute(
                select(_links).where(_links.c.zoho_id.in_(wanted), _links.c.zoho_module == zoho_module,
                                     _links.c.connection_id.in_(connections)).order_by(_links.c.id))
            return [Link.of(row) for row in rows]

    def count(self, connection_id: int | None = None) -> int:
        statement = select(func.count()).select_from(IdLink)
        if connection_id is not None:
            statement = statement.where(IdLink.connection_id == connection_id)
        with session_scope(self._sessions) as session:
            return session.scalar(statement) or 0
