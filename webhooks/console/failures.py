"""The Failures page (being built)."""

from __future__ import annotations

from webhooks.console import console_blueprint, console_page, page


@console_blueprint.route("/failures", methods=["GET"])
@console_page
def failures():
    return page("console/refused.html", section="failures", message="This page is not built yet.")
