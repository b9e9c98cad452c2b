"""One way to get a Redis connection: the real server when REDIS_URL is set, else (embedded mode only) fakeredis.

The fakeredis fallback exists for the embedded default (one process, many threads); every
thread shares one in-memory server so locks and rate buckets still mean something there.
"""

from __future__ import annotations

import threading

import redis

_fake_server = None
_fake_lock = threading.Lock()


def connect_redis(url: str | None) -> redis.Redis:
    if url:
        # A bounded connect: a health check or a task must not hang on an unreachable host.
        return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_connect_timeout=10)
    try:
        import fakeredis  # only the embedded mode needs it, and only it installs it (the "embedded" extra)
    except ImportError:
        from connector.errors import ConfigError

        raise ConfigError("REDIS_URL is not set and the embedded stand-in is not installed "
                          "(pip install 'ml-connector[embedded]' for the demo and CONNECTOR_EMBEDDED=1)") from None

    global _fake_server
    with _fake_lock:
        if _fake_server is None:
            _fake_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_fake_server, decode_responses=True)
