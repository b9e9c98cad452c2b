"""The landing page: every connection's health at a glance (``connector status``)."""

from __future__ import annotations

from webhooks.console import console_blueprint, console_data, console_page, page


@console_blueprint.route("/", methods=["GET"])
@console_page
def connections():
    status = console_data().connections()
    return page("console/connections.html", section="connections", status_view=status)
