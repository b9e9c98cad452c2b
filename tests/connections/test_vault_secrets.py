"""No plaintext secret anywhere: database, audit trail, logs, exceptions, reprs; key rotation without downtime."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from connector.connect import mark_needs_reauth, refresh_expiring_tokens
from connector.errors import NeedsReauth
from connector.secret import Secret
from connector.store.credentials import CredentialStore
from connector.store.tables import Base, Credential
from connector.store.vault import Vault
from workers.cli import main
from workers.deps import configure


def issued_secrets(world) -> set[str]:
    """Every token the sandboxes issued (their own records), plus the client secrets and channel tokens."""
    values = set(world.xero._refresh_tokens) | set(world.xero._access_tokens)
    values |= set(world.zoho._grants) | set(world.zoho._access)
    values |= {c["token"] for c in world.zoho.channels()}
    values |= {world.xero.client_secret, world.zoho.client_secret}
    return {v for v in values if v}


def database_text(world) -> str:
    with world.store.engine.connect() as connection:
        return "\n".join(str(row) for table in Base.metadata.sorted_tables
                         for row in connection.execute(select(table)))


def test_no_issued_token_appears_in_the_database_audit_logs_errors_or_reprs(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.consent("zoho", connection_ids=[kea.id])
    world.clock.advance(timedelta(minutes=50))
    refresh_expiring_tokens(store=world.store, credentials=world.credentials,
                            token_manager=lambda s, c: world.token_manager(s, c, refresh_margin=600))
    world.store.audit.record(connection_id=kea.id, record_type="contact", record_id="c-1", stage="received",
                             detail={"note": "sync started"})
    # The grant is revoked; the refresh fails and the connection is marked (error text in the DB).
    stored = world.credentials.load(kea.id, "xero")
    world.xero.revoke(stored.tokens.refresh_token.reveal())
    world.clock.advance(timedelta(hours=2))
    with pytest.raises(NeedsReauth) as caught:
        world.xero_tokens(kea.id).access_token()
    mark_needs_reauth(world.store, kea.id, str(caught.value))

    secrets = issued_secrets(world)
    assert len(secrets) >= 8, "the scan must have tokens to look for"
    surfaces = {
        "database": database_text(world),
        "logs": "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records),
        "exception": f"{caught.value!s} {caught.value!r}",
        "reprs": " ".join(repr(x) for x in (
            stored, world.credentials.load(kea.id, "zoho"), world.xero_tokens(kea.id), world.zoho_tokens(kea.id),
            world.zoho_client(kea.id), world.flows, world.vault, world.store, world.settings)),
    }
    leaks = {name: sorted(s[:8] for s in secrets if s in body) for name, body in surfaces.items()}
    assert leaks == {name: [] for name in surfaces}
    assert "needs a person" in surfaces["logs"] and "connector connect xero" in surfaces["logs"]
    assert world.store.connections.get(kea.id).state == "needs_reauth"


def test_rotate_keys_re_encrypts_everything_while_running_processes_keep_working(world, capsys):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.consent("zoho", connection_ids=[kea.id])
    old_ring = world.vault_keyring
    settings = world.settings.with_overrides(vault_keys=Secret(old_ring), redis_url=None)

    def run(ring: str) -> str:
        configure(settings.with_overrides(vault_keys=Secret(ring)))
        assert main(["rotate-keys", "--new-key-id", "k2"]) == 0
        return capsys.readouterr().out

    def ring_in(output: str) -> str:
        return next(line for line in output.splitlines() if line.startswith("CONNECTOR_VAULT_KEYS=")).partition("=")[2]

    before = world.credentials.load(kea.id, "xero").tokens.access_token
    step1 = ring_in(run(old_ring))
    assert step1.startswith(old_ring + ",k2:")  # the new key decrypts only, for now
    assert key_ids(world) == {"k1"}

    output = run(step1)
    step2 = ring_in(output)
    assert "Re-encrypted 2 credential(s)" in output and step2.startswith("k2:")
    assert key_ids(world) == {"k2"}
    # A process still on the step-1 ring reads the new ciphertext: no downtime in between.
    running = CredentialStore(world.store.sessions, Vault(step1))
    assert running.load(kea.id, "xero").tokens.access_token == before
    # Rotating again changes nothing; then the old key can go.
    assert "Re-encrypted 0 credential(s)" in run(step2)
    only_new = CredentialStore(world.store.sessions, Vault(step2.split(",")[0]))
    assert only_new.load(kea.id, "zoho").tokens.extra["api_domain"] == world.zoho_server.url


def key_ids(world) -> set[str]:
    with world.store.engine.connect() as connection:
        rows = connection.execute(select(Credential.key_id, Credential.ciphertext)).all()
        assert connection.execute(text("select count(*) from credentials")).scalar() == len(rows)
    assert all(ciphertext.startswith(kid + ":") for kid, ciphertext in rows)
    return {kid for kid, _ in rows}
