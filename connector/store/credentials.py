"""OAuth token sets, encrypted whole, with compare-and-swap so concurrent refreshes cannot clobber.

A refresh token is often single-use (Zoho rotates them, Xero too). Two workers refreshing at
once must not both write: each says which version it read, and the later one gets
``StaleCredentials`` and should reload instead of writing an outdated token set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import ConnectorError
from connector.secret import Secret
from connector.store.db import dialect_insert, session_scope, single_statement
from connector.store.tables import SYSTEMS, Credential, SharedCredential
from connector.store.vault import Vault


@dataclass
class TokenSet:
    access_token: Secret
    refresh_token: Secret
    expires_at: datetime
    scope: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. Zoho's api_domain, the channel token

    # Extra values safe to show; everything else in ``extra`` (a channel token) is masked in reprs.
    PUBLIC_EXTRA = frozenset({"api_domain"})

    def __repr__(self) -> str:
        extra = {k: (v if k in self.PUBLIC_EXTRA else "***") for k, v in (self.extra or {}).items()}
        return (f"TokenSet(access_token={self.access_token!r}, refresh_token={self.refresh_token!r}, "
                f"expires_at={self.expires_at.isoformat()!r}, scope={self.scope!r}, extra={extra!r})")

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token.reveal(),
                "refresh_token": self.refresh_token.reveal(),
                "expires_at": self.expires_at.isoformat(),
                "scope": self.scope,
                "extra": self.extra,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "TokenSet":
        data = json.loads(text)
        return cls(
            access_token=Secret(data["access_token"]),
            refresh_token=Secret(data["refresh_token"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            scope=data.get("scope", ""),
            extra=data.get("extra") or {},
        )


@dataclass
class StoredTokens:
    tokens: TokenSet
    version: int


class StaleCredentials(ConnectorError):
    """The stored token set changed since it was read; reload and decide again."""


# Core reads built once: every API call looks its token set up.
_credentials = Credential.__table__
_LOAD = select(_credentials.c.ciphertext, _credentials.c.version).where(
    _credentials.c.connection_id == bindparam("connection_id"), _credentials.c.system == bindparam("system"))
_SAVE_IF_VERSION = update(_credentials).where(  # an UPDATE's bound names may not be its columns' names
    _credentials.c.connection_id == bindparam("of_connection"), _credentials.c.system == bindparam("of_system"),
    _credentials.c.version == bindparam("expected_version"),
).values(version=_credentials.c.version + 1, **{name: bindparam(f"new_{name}") for name in (
    "ciphertext", "key_id", "access_expires_at", "updated_at")})
_shared = SharedCredential.__table__
_OWNER_OF = select(_shared.c.owner_connection_id).where(
    _shared.c.connection_id == bindparam("connection_id"), _shared.c.system == bindparam("system"))
_SHARE_MAP = select(_shared.c.connection_id, _shared.c.owner_connection_id).where(
    _shared.c.system == bindparam("system"))
_OWNERS = select(_credentials.c.connection_id).where(_credentials.c.system == bindparam("system")).order_by(
    _credentials.c.connection_id)


class CredentialStore:
    def __init__(self, session_factory: sessionmaker[Session], vault: Vault, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._sessions = session_factory
        self._vault = vault
        self._clock = clock

    def seal(self, plaintext: str) -> str:
        """Encrypt with the vault's primary key: for a grant held briefly outside this store (a connect flow
        waiting for the person's choice of organisations)."""
        return self._vault.encrypt(plaintext)

    def unseal(self, ciphertext: str) -> str:
        return self._vault.decrypt(ciphertext)

    def load(self, connection_id: int, system: str) -> StoredTokens | None:
        _check_system(system)
        with single_statement(self._sessions) as connection:
            row = connection.execute(_LOAD, {"connection_id": connection_id, "system": system}).one_or_none()
        if row is None:
            return None
        return StoredTokens(TokenSet.from_json(self._vault.decrypt(row.ciphertext)), row.version)

    def save(
        self, connection_id: int, system: str, tokens: TokenSet, *, expected_version: int | None = None
    ) -> int:
        """Store ``tokens`` and return the new version.

        ``expected_version=None`` writes unconditionally (a fresh grant from a person replaces
        whatever was there); an integer writes only if the stored version still equals it.
        """
        _check_system(system)
        ciphertext = self._vault.encrypt(tokens.to_json())
        values = {
            "ciphertext": ciphertext,
            "key_id": self._vault.key_id_of(ciphertext),
            "access_expires_at": tokens.expires_at,
            "updated_at": self._clock.now(),
        }
        if expected_version is None:
            with session_scope(self._sessions) as session:
                statement = dialect_insert(session, Credential).values(
                    connection_id=connection_id, system=system, version=1, **values
                )
                statement = statement.on_conflict_do_update(
                    index_elements=[Credential.connection_id, Credential.system],
                    set_={**values, "version": Credential.version + 1},
                ).returning(Credential.version)
                return session.execute(statement).scalar_one()
        # A refresh's save: one compare-and-swap statement, whole on its own.
        with single_statement(self._sessions) as connection:
            result = connection.execute(_SAVE_IF_VERSION, {
                "of_connection": connection_id, "of_system": system, "expected_version": expected_version,
                **{f"new_{name}": value for name, value in values.items()}})
            swapped = result.rowcount == 1
        if not swapped:
            raise StaleCredentials(
                f"{system} credentials of connection {connection_id} are no longer at version "
                f"{expected_version}; reload them"
            )
        return expected_version + 1

    def share(self, connection_id: int, system: str, owner_connection_id: int) -> None:
        """Make ``connection_id`` use the token set stored under ``owner_connection_id`` (itself: its own)."""
        _check_system(system)
        with session_scope(self._sessions) as session:
            session.execute(delete(SharedCredential).where(
                SharedCredential.connection_id == connection_id, SharedCredential.system == system))
            if owner_connection_id != connection_id:
                # Its own token set is superseded: nobody must go on refreshing it (or find it revoked).
                session.execute(delete(Credential).where(
                    Credential.connection_id == connection_id, Credential.system == system))
                session.execute(update(SharedCredential).where(
                    SharedCredential.owner_connection_id == connection_id, SharedCredential.system == system,
                ).values(owner_connection_id=owner_connection_id))
                session.add(SharedCredential(
                    connection_id=connection_id, system=system, owner_connection_id=owner_connection_id))

    def owner_of(self, connection_id: int, system: str) -> int:
        """The connection whose stored token set ``connection_id`` uses for ``system``."""
        _check_system(system)
        with single_statement(self._sessions) as connection:
            owner = connection.execute(_OWNER_OF, {"connection_id": connection_id, "system": system}).scalar()
        return connection_id if owner is None else owner

    def share_map(self, system: str) -> dict[int, int]:
        """{connection id: owner connection id} for every connection using another's token set."""
        _check_system(system)
        with single_statement(self._sessions) as connection:
            rows = connection.execute(_SHARE_MAP, {"system": system}).all()
        return {connection_id: owner_id for connection_id, owner_id in rows}

    def sharing(self, connection_id: int, system: str) -> list[int]:
        """Every connection using the same token set as ``connection_id`` (itself included), in id order:
        for Zoho, the Xero tenants connected to one Zoho org."""
        owner_id = self.owner_of(connection_id, system)
        with session_scope(self._sessions) as session:
            users = session.scalars(select(SharedCredential.connection_id).where(
                SharedCredential.owner_connection_id == owner_id, SharedCredential.system == system))
            return sorted({owner_id, connection_id, *users})

    def load_for(self, connection_id: int, system: str) -> StoredTokens | None:
        """The token set ``connection_id`` uses, its own or its owner's."""
        return self.load(self.owner_of(connection_id, system), system)

    def owners(self, system: str) -> list[int]:
        """Connections that hold a stored token set for ``system``: the refresh job's work list."""
        _check_system(system)
        with single_statement(self._sessions) as connection:
            return list(connection.execute(_OWNERS, {"system": system}).scalars())

    def rotate_keys(self, new_vault: Vault) -> int:
        """Re-encrypt every row not yet under ``new_vault``'s first key; returns how many were rewritten.

        Old ciphertext is read with whichever vault knows its key. Each rewrite is a
        compare-and-swap too, so a refresh landing meanwhile is never overwritten with older tokens.
        """
        rewritten = 0
        with session_scope(self._sessions) as session:
            ids = session.scalars(select(Credential.id).order_by(Credential.id)).all()
        for credential_id in ids:
            while True:
                with session_scope(self._sessions) as session:
                    row = session.get(Credential, credential_id)
                    if row is None or not new_vault.needs_rotation(row.ciphertext):
                        break
                    reader = new_vault if row.key_id in new_vault.key_ids else self._vault
                    ciphertext = new_vault.encrypt(reader.decrypt(row.ciphertext))
                    result = session.execute(
                        update(Credential)
                        .where(Credential.id == credential_id, Credential.version == row.version)
                        .values(
                            ciphertext=ciphertext,
                            key_id=new_vault.primary_key_id,
                            version=row.version + 1,
                            updated_at=self._clock.now(),
                        )
                    )
                    if result.rowcount == 1:
                        rewritten += 1
                        break
        self._vault = new_vault
        return rewritten


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}, not {system!r}")
