"""Webhook ids of Xero organisations that have no connection yet, held until one is made.

Xero sends every organisation's events to the app's one webhook from the moment it is registered,
which may be before that organisation is connected here. Such ids are not failures: each is held in
Redis per tenant (a hash of ``resource:id`` → sync id, plus a set of the tenants holding any). Once
the tenant's connection exists and has its Zoho org, ``adopt`` parks them under it for a fetch due
at once (ParkedWorkStore), where ``connector.resume_parked_work`` hands them to the normal fetch:
each connect queues that task, and beat runs it every minute for a connection made any other way.

Bounded: at most ``limit`` ids per tenant, kept ``ttl`` seconds after the last one. Past the bound
nothing is lost: a new connection's first poll has no cursor yet and lists the whole organisation.
"""

from __future__ import annotations

import logging
from typing import Iterable

from connector.pipeline.common import RECORD_TYPES
from connector.pipeline.xero_in import PRIORITY_WEBHOOK
from connector.store import audit as stages
from connector.store.parked import FETCH

log = logging.getLogger(__name__)

HELD_LIMIT = 10_000
HELD_TTL_SECONDS = 30 * 86_400
NOT_CONNECTED = "not_connected"  # the parked reason of held ids, for the moment between adopt and resume

# Adds ids up to the bound (an id already held keeps its sync id) and indexes the tenant.
# KEYS: hash, tenants set; ARGV: limit, ttl, tenant, then field, sync id pairs. Returns {held, dropped}.
_HOLD = """
local held, dropped = 0, 0
local size = redis.call('HLEN', KEYS[1])
for i = 4, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    held = held + 1
  elseif size < tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    size = size + 1
    held = held + 1
  else
    dropped = dropped + 1
  end
end
if size > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call('SADD', KEYS[2], ARGV[3])
end
return {held, dropped}
"""

# Removes the adopted fields; the tenant leaves the index once it holds nothing.
# KEYS: hash, tenants set; ARGV: tenant, then fields.
_RELEASE = """
for i = 2, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 0
"""


def _text(value) -> str:
    return value if isinstance(value, str) else value.decode()


class HeldXeroEvents:
    def __init__(self, redis, *, limit: int = HELD_LIMIT, ttl: int = HELD_TTL_SECONDS,
                 key_prefix: str = "connector:held-xero") -> None:
        self._redis = redis
        self._limit = limit
        self._ttl = ttl
        self._prefix = key_prefix
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    def keys(self, tenant_id: str) -> list[str]:
        """The Redis key holding this tenant's ids."""
        return [f"{self._prefix}:{tenant_id}"]

    @property
    def _tenants_key(self) -> str:
        return f"{self._prefix}:tenants"

    def hold(self, tenant_id: str, sync_ids: dict[tuple[str, str], str]) -> tuple[int, int]:
        """Hold (resource, xero id) → sync id for a tenant with no connection; returns (held, dropped)."""
        if not sync_ids:
            return 0, 0
        args: list = [self._limit, self._ttl, tenant_id]
        for (resource, record_id), sync_id in sync_ids.items():
            args += [f"{resource}:{record_id}", sync_id]
        held, dropped = self._hold(keys=[*self.keys(tenant_id), self._tenants_key], args=args)
        return int(held), int(dropped)

    def count(self, tenant_id: str) -> int:
        return int(self._redis.hlen(self.keys(tenant_id)[0]))

    def adopt(self, store, connection_ids: Iterable[int] | None = None) -> int:
        """Park the held ids of these connections' tenants (None: of every holding tenant that now has a
        connection) under their connection, audited as received, once it has a Zoho org; returns how many.

        Parked before they leave Redis: a crash in between only parks them again (the same rows)."""
        if connection_ids is None:
            found = (store.connections.by_tenant(_text(t)) for t in self._redis.smembers(self._tenants_key))
        else:
            found = (store.connections.get(i) for i in connection_ids)
        adopted = 0
        # Not before the connection has its Zoho org too: fetched now, they could not be pushed anywhere.
        for connection in [c for c in found if c is not None and c.zoho_connected]:
            adopted += self._adopt(store, connection)
        return adopted

    def _adopt(self, store, connection) -> int:
        tenant_id = connection.xero_tenant_id
        held = {_text(k): _text(v) for k, v in self._redis.hgetall(self.keys(tenant_id)[0]).items()}
        by_resource: dict[str, dict[str, str]] = {}
        for field, sync_id in held.items():
            resource, _, record_id = field.partition(":")
            by_resource.setdefault(resource, {})[record_id] = sync_id
        trail = store.audit.batch()
        for resource, sync_ids in by_resource.items():
            store.parked.park(connection.id, resource, list(sync_ids), reason=NOT_CONNECTED,
                              priority=PRIORITY_WEBHOOK, sync_ids=sync_ids, stage=FETCH)
            for record_id, sync_id in sync_ids.items():
                trail.record(connection_id=connection.id, record_type=RECORD_TYPES[resource], record_id=record_id,
                             sync_id=sync_id, stage=stages.RECEIVED,
                             detail={"source": "webhook", "held_until_connected": True})
        trail.flush()
        self._release(keys=[*self.keys(tenant_id), self._tenants_key], args=[tenant_id, *held])
        if held:
            log.info("xero.held.adopted", extra={"connection_id": connection.id, "tenant_id": tenant_id,
                                                 "count": len(held)})
        return len(held)

