"""One read cache for a batch of records: the reads a unit of work makes of one store, fetched together.

``prefetch`` reads many ids of one kind in one query (the store's ``get_many``) and ``get`` answers from
what was read (a miss reads that one record). A write through the cache forgets what was read of that
record. Made fresh per unit of work: a read is only as current as the moment it was made. Anything
else is the store's own (``__getattr__``).
"""

from __future__ import annotations

from typing import Any


class BatchReads:
    def __init__(self, store) -> None:
        self._store = store
        self._read: dict[tuple[int, str, str], Any] = {}

    def prefetch(self, connection_id: int, kind: str, xero_ids) -> None:
        wanted = [i for i in dict.fromkeys(xero_ids) if i]  # always a fresh read
        if not wanted:
            return
        found = self._store.get_many(connection_id, kind, wanted)
        for xero_id in wanted:
            self._read[(connection_id, kind, xero_id)] = found.get(xero_id)

    def prefetch_missing(self, connection_id: int, kind: str, xero_ids) -> None:
        """``prefetch`` of those ids not read yet (or forgotten since, by a write through this cache)."""
        self.prefetch(connection_id, kind, [i for i in dict.fromkeys(xero_ids)
                                            if i and (connection_id, kind, i) not in self._read])

    def forget(self, connection_id: int, kind: str, xero_ids) -> None:
        """Forget what was read of these records (they are about to be written)."""
        for xero_id in xero_ids:
            self._read.pop((connection_id, kind, xero_id), None)

    def get(self, connection_id: int, kind: str, xero_id: str):
        key = (connection_id, kind, xero_id)
        if key not in self._read:
            self._read[key] = self._store.get(connection_id, kind, xero_id)
        return self._read[key]

    def __getattr__(self, name: str):
        return getattr(self._store, name)
