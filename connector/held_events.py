"""Webhook ids of Xero organisations that have no connection yet, held until one is made.

Xero sends every organisation's events to the app's one webhook from the moment it is registered,
which may be before that organisation is connected here. Such ids are not failures: each is held in
Redis per tenant (a hash of ``resource:id`` → sync id, plus a set of the tenants holding any and
when each began to hold, for ``connector status``). Once
the tenant's connection exists and has its Zoho org, ``adopt`` parks them under it for a fetch due
at once (ParkedWorkStore), where ``connector.resume_parked_work`` hands them to the normal fetch:
each connect queues that task, and beat runs it every minute for a connection made any other way.

Bounded: at most ``limit`` ids per tenant, kept ``ttl`` seconds after the last one. Past the bound
nothing is lost: a new connection's first poll has no cursor yet and lists the whole organisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from connector.clock import SYSTEM_CLOCK, Clock
from connector.pipeline.common import RECORD_TYPES
from connector.pipeline.xero_in import PRIORITY_WEBHOOK
from connector.store import audit as stages
from connector.store.parked import FETCH

log = logging.getLogger(__name__)

HELD_LIMIT = 10_000
HELD_TTL_SECONDS = 30 * 86_400
NOT_CONNECTED = "not_connected"  # the parked reason of held ids, for the moment between adopt and resume

# Adds ids up to the bound (an id already held keeps its sync id), indexes the tenant and notes when it
# began to hold. KEYS: hash, tenants set, since hash; ARGV: limit, ttl, tenant, now, then field, sync id
# pairs. Returns {held, dropped}.
_HOLD = """
local held, dropped = 0, 0
local size = redis.call('HLEN', KEYS[1])
local was_empty = size == 0
for i = 5, #ARGV, 2 do
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
  if was_empty then
    redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
  end
end
return {held, dropped}
"""

# Removes the adopted fields; the tenant leaves the index once it holds nothing.
# KEYS: hash, tenants set, since hash; ARGV: tenant, then fields.
_RELEASE = """
for i = 2, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 0
"""

# Every tenant holding ids, how many and since when, in one round trip (a tenant whose ids expired is left
# out). KEYS: tenants set, since hash; ARGV: the prefix of the tenants' hashes. Returns tenant, count, since...
_HELD = """
local out = {}
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local count = redis.call('HLEN', ARGV[1] .. tenant)
  if count > 0 then
    table.insert(out, tenant)
    table.insert(out, count)
    table.insert(out, redis.call('HGET', KEYS[2], tenant) or '')
  end
end
return out
"""


@dataclass(frozen=True)
class HeldTenant:
    tenant_id: str
    count: int
    since: datetime | None  # when its first id still held arrived


def _text(value) -> str:
    return value if isinstance(value, str) else value.decode()


class HeldXeroEvents:
    def __init__(self, redis, *, limit: int = HELD_LIMIT, ttl: int = HELD_TTL_SECONDS,
                 key_prefix: str = "connector:held-xero", clock: Clock = SYSTEM_CLOCK) -> None:
        self._redis = redis
        self._limit = limit
        self._ttl = ttl
        self._prefix = key_prefix
        self._clock = clock
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)
        self._held = redis.register_script(_HELD)

    def keys(self, tenant_id: str) -> list[str]:
        """The Redis key holding this tenant's ids."""
        return [f"{self._prefix}:{tenant_id}"]

    @property
    def _tenants_key(self) -> str:
        return f"{self._prefix}:tenants"

    @property
    def _since_key(self) -> str:
        return f"{self._prefix}:since"

    def hold(self, tenant_id: str, sync_ids: dict[tuple[str, str], str]) -> tuple[int, int]:
        """Hold (resource, xero id) → sync id for a tenant with no connection; returns (held, dropped)."""
        if not sync_ids:
            return 0, 0
        args: list = [self._limit, self._ttl, tenant_id, repr(self._clock.time())]
        for (resource, record_id), sync_id in sync_ids.items():
            args += [f"{resource}:{record_id}", sync_id]
        held, dropped = self._hold(keys=[*self.keys(tenant_id), self._tenants_key, self._since_key], args=args)
        return int(held), int(dropped)

    def count(self, tenant_id: str) -> int:
        return int(self._redis.hlen(self.keys(tenant_id)[0]))

    def held(self) -> list[HeldTenant]:
        """Every tenant holding ids, with how many and since when, by tenant id (one Redis call)."""
        flat = self._held(keys=[self._tenants_key, self._since_key], args=[f"{self._prefix}:"])
        tenants = [HeldTenant(_text(flat[i]), int(flat[i + 1]),
                              datetime.fromtimestamp(float(flat[i + 2]), timezone.utc) if flat[i + 2] else None)
                   for i in range(0, len(flat), 3)]
        return sorted(tenants, key=lambda t: t.tenant_id)

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
        self._release(keys=[*self.keys(tenant_id), self._tenants_key, self._since_key], args=[tenant_id, *held])
        if held:
            log.info("xero.held.adopted", extra={"connection_id": connection.id, "tenant_id": tenant_id,
                                                 "count": len(held)})
        return len(held)

