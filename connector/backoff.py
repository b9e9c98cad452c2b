"""How long to wait before trying again: the one backoff formula every retry and park uses.

Each caller keeps its own bounds (workers.base for broker retries and rate limits, connector.parking for parked work,
workers.zoho_tasks for Zoho's retryable refusals, workers.xero_tasks for Xero's rate limits). The wait
is always jittered: after an outage every task waiting on it would otherwise come back in the same
instant and knock the vendor (and its rate limits) over again, a thundering herd.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, growth: float = 2.0,
                  jitter: tuple[float, float] = (1.0, 1.0), extra: float = 0.0,
                  rng: random.Random | None = None) -> float:
    """``min(base * growth ** attempt, cap)``, scaled by a random factor between ``jitter``'s two
    bounds, plus up to ``extra`` random seconds (added after the cap: a wait the vendor set, such as
    Retry-After, stays the least one waits). ``rng`` makes the jitter reproducible (tests); by default
    the module's shared source."""
    source = rng or random
    try:
        delay = min(base * growth ** attempt, cap)
    except OverflowError:  # an outage long enough for the power to outgrow a float: long past the cap
        delay = cap
    return delay * source.uniform(*jitter) + source.uniform(0.0, extra)
