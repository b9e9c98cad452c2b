"""Storage: SQLAlchemy models, Alembic migrations, the token vault and one repository per noun.

``Store.open(url)`` is the usual way in: it builds the engine, migrates to the newest schema
and hands out the repositories.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.store.audit import AuditLog
from connector.store.backfills import BackfillCheckpointStore
from connector.store.channels import ChannelStore
from connector.store.connections import ConnectionStore
from connector.store.credentials import CredentialStore
from connector.store.cursors import PollCursorStore
from connector.store.deal_links import DealLinkStore
from connector.store.won_deals import WonDealInvoiceStore
from connector.store.db import make_engine, make_session_factory, migrate, one_transaction
from connector.store.links import LinkStore
from connector.store.parked import ParkedWorkStore
from connector.store.snapshots import SnapshotStore
from connector.store.vault import Vault
from connector.store.write_ledger import WriteLedger


class Store:
    def __init__(self, engine: Engine, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.clock = clock
        self.connections = ConnectionStore(self.sessions, clock=clock)
        self.links = LinkStore(self.sessions, clock=clock)
        self.snapshots = SnapshotStore(self.sessions, clock=clock)
        self.audit = AuditLog(self.sessions, clock=clock)
        self.channels = ChannelStore(self.sessions, clock=clock)
        self.parked = ParkedWorkStore(self.sessions, clock=clock)
        self.poll_cursors = PollCursorStore(self.sessions, clock=clock)
        self.write_ledger = WriteLedger(self.sessions, clock=clock)
        self.backfills = BackfillCheckpointStore(self.sessions, clock=clock)
        self.deal_links = DealLinkStore(self.sessions, clock=clock)
        self.won_deals = WonDealInvoiceStore(self.sessions, clock=clock)

    @classmethod
    def open(cls, database_url: str, *, clock: Clock = SYSTEM_CLOCK) -> "Store":
        engine = make_engine(database_url)
        migrate(engine)
        return cls(engine, clock=clock)

    def credentials(self, vault: Vault) -> CredentialStore:
        return CredentialStore(self.sessions, vault, clock=self.clock)

    def transaction(self):
        """A block whose store calls share one transaction (``db.one_transaction``)."""
        return one_transaction(self.sessions)

    def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"
