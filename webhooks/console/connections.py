"""The landing page: every connection's health at a glance (``connector status``), and its last 24 hours as
sparklines (connector/activity_charts.py)."""

from __future__ import annotations

from markupsafe import Markup

from connector.activity_charts import activity_24h, sparkline_svg
from webhooks.console import console_blueprint, console_data, console_page, page

CHARTS = (("records_synced", "Records synced per hour"), ("failures", "Failures per hour"),
          ("xero_calls", "Xero calls per hour"))


@console_blueprint.route("/", methods=["GET"])
@console_page
def connections():
    data = console_data()
    status = data.connections()
    activity = activity_24h(data.store, data.deps.budget_ledger, [c["id"] for c in status["connections"]], data.now())
    # The renderer escapes every text it writes: its SVG goes into the page as markup.
    charts = {connection_id: [(label, Markup(sparkline_svg(getattr(a, name), label=label)), sum(getattr(a, name)))
                              for name, label in CHARTS]
              for connection_id, a in activity.items()}
    return page("console/connections.html", section="connections", status_view=status, charts=charts)
