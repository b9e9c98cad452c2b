"""The Records page (being built)."""

from __future__ import annotations

from webhooks.console import console_blueprint, console_page, page


@console_blueprint.route("/records", methods=["GET"])
@console_page
def records():
    return page("console/refused.html", section="records", message="This page is not built yet.")
