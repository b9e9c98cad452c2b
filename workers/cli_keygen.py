"""`connector keygen`: a new vault key ring value for CONNECTOR_VAULT_KEYS."""

from __future__ import annotations

import argparse


def cmd_keygen(args: argparse.Namespace) -> int:
    from connector.store.vault import Vault

    print(Vault.generate_keyring(args.key_id))
    return 0


def register(sub) -> None:
    p = sub.add_parser("keygen", help="print a new vault key ring ('k1:<fernet key>') for CONNECTOR_VAULT_KEYS")
    p.add_argument("--key-id", default="k1", help="the key's id in the ring (letters, digits, '.', '_', '-')")
    p.set_defaults(func=cmd_keygen)
