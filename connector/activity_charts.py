"""The last 24 hours per connection, hour by hour, and a pure renderer of it as an inline SVG sparkline.

``activity_24h`` reads: records synced (audit stage "written") and failed per hour come from ONE grouped query
on the audit trail, bounded to 24 hours (connector/store/audit.py ``hourly_counts``, on
ix_audit_events_created_at); Xero calls per hour from the budget ledger's hourly buckets in Redis
(connector/budget.py). ``sparkline_svg`` is pure: numbers in, SVG text out (no script, no library: the console's
pages load nothing from anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape

from connector.store import audit as stages

HOURS = 24
SPARK_WIDTH = 240
SPARK_HEIGHT = 36


@dataclass
class Activity:
    """One connection's last HOURS hours, oldest hour first, the current hour last."""

    records_synced: list[int] = field(default_factory=lambda: [0] * HOURS)
    failures: list[int] = field(default_factory=lambda: [0] * HOURS)
    xero_calls: list[int] = field(default_factory=lambda: [0] * HOURS)


def hour_slots(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The starts (naive UTC, as ``hourly_counts`` keys them) of the last ``hours`` hours, the current one last."""
    utc = now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo is not None else now
    current = utc.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def activity_24h(store, ledger, connection_ids: list[int], now: datetime) -> dict[int, Activity]:
    """Per connection: records synced, failures and Xero calls in each of the last 24 hours."""
    slots = hour_slots(now)
    index = {start: i for i, start in enumerate(slots)}
    found = {connection_id: Activity() for connection_id in connection_ids}
    counts = store.audit.hourly_counts((stages.WRITTEN, stages.FAILED), since=now - timedelta(hours=HOURS))
    for (connection_id, stage, started), n in counts.items():
        activity, i = found.get(connection_id), index.get(started)
        if activity is None or i is None:
            continue
        series = activity.records_synced if stage == stages.WRITTEN else activity.failures
        series[i] += n
    for connection_id, activity in found.items():
        calls = ledger.hourly_calls(connection_id, HOURS)
        activity.xero_calls = ([0] * HOURS + calls)[-HOURS:]
    return found


def sparkline_svg(values: list[int | float], *, label: str, width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT
                  ) -> str:
    """An inline SVG sparkline of ``values`` (oldest first): a polyline scaled to the largest value, the newest
    value as a dot; ``label`` is its accessible name and tooltip. All zeros draw a flat line at the bottom."""
    points = [max(float(v), 0.0) for v in values] or [0.0]
    top = max(points) or 1.0
    pad = 2.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return round(height - pad - (height - 2 * pad) * value / top, 1)

    coordinates = " ".join(f"{round(pad + i * step, 1)},{y(v)}" for i, v in enumerate(points))
    last_x, last_y = round(pad + (len(points) - 1) * step, 1), y(points[-1])
    total = sum(points)
    title = escape(f"{label}: {int(total) if total.is_integer() else total} in all, {_number(points[-1])} "
                   f"in the last hour, at most {_number(max(points))} an hour")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}">', f"<title>{title}</title>"]
    parts.append(f'<polyline fill="none" stroke="#1f3a5f" stroke-width="1.5" points="{coordinates}"/>')
    parts.append(f'<circle cx="{last_x}" cy="{last_y}" r="2" fill="#1f3a5f"/>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
