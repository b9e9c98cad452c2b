"""Refresh that never races: 20 processes, one refresh; a lost rotation recovered in Xero's grace."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest

from connector.errors import NeedsReauth, TransientError
from connector.http import make_session
from connector.secret import Secret
from connector.store import Store
from connector.store.db import make_engine
from connector.store.vault import Vault
from connector.xero.auth import XeroTokenManager
from tests.conftest import redis_db, redis_url

PROCESSES = 20


def _race_for_token(database_url, keyring, token_url, client_id, client_secret, connection_id, barrier, results):
    """One worker process: its own engine, Redis connection and HTTP session, like a Celery worker."""
    import redis

    store = Store(make_engine(database_url))
    manager = XeroTokenManager(
        connection_id=connection_id, credentials=store.credentials(Vault(keyring)),
        redis=redis.Redis.from_url(redis_url(redis_db("connections")), decode_responses=True), session=make_session(),
        token_url=token_url, client_id=client_id, client_secret=Secret(client_secret),
    )
    barrier.wait(timeout=30)
    try:
        results.put(manager.access_token())
    except Exception as exc:  # reported, so the parent can fail with the reason
        results.put(f"error: {type(exc).__name__}: {exc}")
    finally:
        store.close()


def test_twenty_processes_with_an_expired_token_make_exactly_one_refresh(make_world, pg_database_url):
    from connector.clock import SYSTEM_CLOCK

    world = make_world(SYSTEM_CLOCK)  # real time: the children use the system clock
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    stored = world.credentials.load(kea.id, "xero")
    stored.tokens.expires_at = world.clock.now() - timedelta(seconds=1)
    world.credentials.save(kea.id, "xero", stored.tokens)
    world.xero.expire_access_tokens()
    before = len(world.xero.calls(path_prefix="/connect/token"))

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    args = (pg_database_url, world.vault_keyring, f"{world.xero_server.url}/connect/token", world.xero.client_id,
            world.xero.client_secret, kea.id, barrier, results)
    workers = [context.Process(target=_race_for_token, args=args) for _ in range(PROCESSES)]
    for process in workers:
        process.start()
    tokens = [results.get(timeout=60) for _ in workers]
    for process in workers:
        process.join(timeout=30)

    assert not [t for t in tokens if t.startswith("error")], tokens
    assert len(world.xero.calls(path_prefix="/connect/token")) - before == 1  # the sandbox's own log
    assert len(set(tokens)) == 1  # everyone uses the one new token...
    assert tokens[0] == world.credentials.load(kea.id, "xero").tokens.access_token.reveal()  # ...as stored


def test_a_lost_refresh_response_is_recovered_within_the_grace_period(world):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.clock.advance(timedelta(minutes=29))  # inside the refresh margin
    old_refresh = world.credentials.load(kea.id, "xero").tokens.refresh_token.reveal()
    tokens = world.xero_tokens(kea.id, timeout=(2, 0.3))

    # Xero rotates the token, but none of the answers reach us (three quick transport attempts).
    world.xero.faults.fail_next(3, lost_response=True, delay=0.6, path_prefix="/connect/token")
    with pytest.raises(TransientError):
        tokens.access_token()
    assert world.credentials.load(kea.id, "xero").tokens.refresh_token.reveal() == old_refresh

    # The next attempt, 20 minutes later, still holds the old token: Xero's grace hands out the successor.
    world.clock.advance(timedelta(minutes=20))
    token = tokens.access_token()
    stored = world.credentials.load(kea.id, "xero").tokens
    assert stored.refresh_token.reveal() != old_refresh and stored.access_token.reveal() == token
    assert stored.expires_at == world.clock.now() + timedelta(minutes=30)
    # and the recovered token set keeps rotating normally
    world.clock.advance(timedelta(minutes=29))
    assert tokens.access_token() != token


def test_a_lost_response_retried_after_the_grace_period_needs_a_person(world):
    world.xero.add_tenant("Kea Ltd")
    [kea] = world.consent("xero")
    world.clock.advance(timedelta(minutes=29))
    tokens = world.xero_tokens(kea.id, timeout=(2, 0.3))
    world.xero.faults.fail_next(3, lost_response=True, delay=0.6, path_prefix="/connect/token")
    with pytest.raises(TransientError):
        tokens.access_token()
    world.clock.advance(timedelta(minutes=31))  # the sandbox follows Xero: the grace is 30 minutes
    with pytest.raises(NeedsReauth, match="invalid_grant"):
        tokens.access_token()
