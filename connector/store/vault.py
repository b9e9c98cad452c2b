"""Encryption at rest for OAuth tokens: a Fernet key ring with named keys.

The ring is ``"kid1:<fernet key>,kid2:<fernet key>"``. The first key encrypts; every key
decrypts, so a new key can be put first and old ciphertext re-encrypted at leisure.
Ciphertext is ``"<kid>:<fernet token>"``, which says which key to use without trying them all.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from connector.errors import ConfigError
from connector.secret import Secret

KEYRING_FILE = "vault.keys"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class Vault:
    def __init__(self, keyring: Secret | str) -> None:
        ring = keyring.reveal() if isinstance(keyring, Secret) else keyring
        self._fernets: dict[str, Fernet] = {}
        for position, entry in enumerate(part.strip() for part in ring.split(",")):
            if not entry:
                continue
            kid, sep, key = entry.partition(":")
            kid = kid.strip()
            # Messages name the key by id or position only; the key itself must never appear.
            if not sep or not _KEY_ID.fullmatch(kid):
                raise ConfigError(
                    f"vault key ring entry #{position + 1} must look like 'kid:<fernet key>' "
                    "with a key id of letters, digits, '.', '_' or '-'"
                )
            if kid in self._fernets:
                raise ConfigError(f"vault key id {kid!r} appears twice in the key ring")
            try:
                self._fernets[kid] = Fernet(key.strip().encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                raise ConfigError(
                    f"vault key {kid!r} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        if not self._fernets:
            raise ConfigError("the vault key ring is empty; set CONNECTOR_VAULT_KEYS to 'kid:<fernet key>'")
        self._primary = next(iter(self._fernets))

    @property
    def primary_key_id(self) -> str:
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._fernets)

    def encrypt(self, plaintext: str) -> str:
        token = self._fernets[self._primary].encrypt(plaintext.encode("utf-8"))
        return f"{self._primary}:{token.decode('ascii')}"

    def decrypt(self, ciphertext: str) -> str:
        kid = self.key_id_of(ciphertext)
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise ConfigError(
                f"ciphertext was encrypted with vault key {kid!r}, which is not in the key ring "
                f"(known: {', '.join(self._fernets)}); add that key back to CONNECTOR_VAULT_KEYS"
            )
        try:
            return fernet.decrypt(ciphertext.partition(":")[2].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"ciphertext cannot be decrypted with vault key {kid!r}: the key is wrong or the data is damaged"
            ) from None

    @staticmethod
    def key_id_of(ciphertext: str) -> str:
        kid, sep, _ = ciphertext.partition(":")
        if not sep or not _KEY_ID.fullmatch(kid):
            raise ConfigError("ciphertext does not start with a vault key id ('kid:...')")
        return kid

    def needs_rotation(self, ciphertext: str) -> bool:
        """True when the ciphertext was made with a key other than the current (first) one."""
        return self.key_id_of(ciphertext) != self._primary

    @staticmethod
    def generate_keyring(kid: str | None = None) -> str:
        """A fresh one-key ring, ``"<kid>:<fernet key>"``; prepend it to an existing ring to rotate."""
        kid = kid or f"k{secrets.token_hex(4)}"
        if not _KEY_ID.fullmatch(kid):
            raise ConfigError("a vault key id may hold only letters, digits, '.', '_' or '-' (at most 32)")
        return f"{kid}:{Fernet.generate_key().decode('ascii')}"

    def __repr__(self) -> str:
        return f"Vault(key_ids={list(self._fernets)!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Vault objects hold keys and are not picklable")


def load_or_create_local_keyring(data_dir: Path) -> Secret:
    """The embedded default's key ring: ``<data_dir>/vault.keys``, made once with mode 0600.

    For real deployments set CONNECTOR_VAULT_KEYS instead; a key beside the database it
    protects only guards against the database file leaking on its own.
    """
    data_dir = Path(data_dir)
    path = data_dir / KEYRING_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Write a private temp file, then link it into place: link fails if another process
        # won the race, and nobody ever reads a half-written ring.
        temp = data_dir / f".{KEYRING_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(Vault.generate_keyring("local1") + "\n")
            try:
                os.link(temp, path)
            except FileExistsError:
                pass
        finally:
            temp.unlink(missing_ok=True)
    ring = path.read_text(encoding="ascii").strip()
    if not ring:
        raise ConfigError(f"{path} is empty; delete it to have a new key ring made (old tokens will be lost)")
    return Secret(ring)
