"""The Mapping page (being built)."""

from __future__ import annotations

from webhooks.console import console_blueprint, console_page, page


@console_blueprint.route("/mapping", methods=["GET"])
@console_page
def mapping():
    return page("console/refused.html", section="mapping", message="This page is not built yet.")
