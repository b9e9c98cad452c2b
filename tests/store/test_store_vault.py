from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet

from connector.errors import ConfigError
from connector.secret import Secret
from connector.store.vault import Vault, load_or_create_local_keyring


def test_round_trip_and_ciphertext_names_its_key() -> None:
    vault = Vault(Vault.generate_keyring("k1"))
    ciphertext = vault.encrypt("hello ✓")
    assert ciphertext.startswith("k1:")
    assert "hello" not in ciphertext
    assert vault.decrypt(ciphertext) == "hello ✓"
    assert vault.key_id_of(ciphertext) == "k1"


def test_two_key_ring_decrypts_old_and_encrypts_with_the_first() -> None:
    old_ring = Vault.generate_keyring("old")
    old_vault = Vault(old_ring)
    old_ciphertext = old_vault.encrypt("secret-a")

    rotated = Vault(Secret(f"{Vault.generate_keyring('new')},{old_ring}"))
    assert rotated.decrypt(old_ciphertext) == "secret-a"
    assert rotated.needs_rotation(old_ciphertext)
    fresh = rotated.encrypt("secret-b")
    assert rotated.key_id_of(fresh) == "new"
    assert not rotated.needs_rotation(fresh)
    with pytest.raises(ConfigError, match="'new'.*not in the key ring"):
        old_vault.decrypt(fresh)


def test_unknown_and_wrong_keys_raise_config_errors_without_key_material() -> None:
    ring = Vault.generate_keyring("k1")
    key = ring.partition(":")[2]
    other_with_same_id = Vault(Vault.generate_keyring("k1"))
    with pytest.raises(ConfigError) as wrong_key:
        other_with_same_id.decrypt(Vault(ring).encrypt("x"))
    assert "k1" in str(wrong_key.value) and key not in str(wrong_key.value)

    with pytest.raises(ConfigError) as unknown:
        Vault(ring).decrypt("k9:gAAAAAB-not-really")
    assert "k9" in str(unknown.value) and key not in str(unknown.value)


@pytest.mark.parametrize(
    "ring",
    ["", "nokid", "k1:not-a-fernet-key-but-long-enough", "bad id!:" + Fernet.generate_key().decode()],
    ids=["empty", "no key id", "not a Fernet key", "bad key id"],  # the same on every xdist worker: no key in it
)
def test_malformed_rings_are_config_errors_that_do_not_echo_the_ring(ring: str) -> None:
    with pytest.raises(ConfigError) as error:
        Vault(ring)
    secret_part = ring.partition(":")[2]
    assert not secret_part or secret_part not in str(error.value)
    # A chained exception would print in tracebacks; the underlying error may quote the key.
    assert error.value.__cause__ is None
    assert error.value.__context__ is None or error.value.__suppress_context__


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        Vault(f"{Vault.generate_keyring('a')},{Vault.generate_keyring('a')}")


def test_repr_and_str_show_key_ids_only() -> None:
    ring = f"{Vault.generate_keyring('a')},{Vault.generate_keyring('b')}"
    vault = Vault(ring)
    for shown in (repr(vault), str(vault)):
        assert shown == "Vault(key_ids=['a', 'b'])"
        for entry in ring.split(","):
            assert entry.partition(":")[2] not in shown


def test_local_keyring_is_created_once_with_mode_0600(tmp_path) -> None:
    data_dir = tmp_path / "var"
    first = load_or_create_local_keyring(data_dir)
    second = load_or_create_local_keyring(data_dir)
    assert first == second
    path = data_dir / "vault.keys"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == ["vault.keys"]  # no temp files left behind
    vault = Vault(first)
    assert vault.decrypt(vault.encrypt("x")) == "x"
    assert repr(first) == "Secret('***')"
