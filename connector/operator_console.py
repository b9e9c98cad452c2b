"""What the operator console (webhooks/console/) shows and changes, read from the store and Redis.

The receiver stays thin: every console page asks ``ConsoleData`` and renders the answer; its forms call
back here (dismiss) or enqueue a task (replay). Nothing here calls Xero or Zoho.
"""

from __future__ import annotations

from typing import Any

from connector.status import collect_status


class ConsoleData:
    """The console's reads over one process's deps (workers/deps.Deps: store, credentials, Redis, settings)."""

    def __init__(self, deps) -> None:
        self.deps = deps

    @property
    def store(self):
        return self.deps.store

    def connections(self) -> dict[str, Any]:
        """``connector status`` (connector/status.py): per connection tokens' and channels' expiries (never a
        token), the Xero day budget, parked and failed counts, the last sync per record type; the queues."""
        return collect_status(self.deps)
