"""Connect and fit in a real headless Chromium (the harness of test_console_browser.py): an operator connects a
Xero organisation and then a Zoho org through the receiver's OAuth routes against the sandboxes, comes back into
the console from the result pages (choosing one of the two organisations Xero shared), reads the fit report a worker built, starts the backfill and follows it to
the end. Screenshots: docs/console/connect*.png with `make screenshots`."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connector.sandbox.common import serve
from tests.console.console_kit import ADMIN_TOKEN, LINES, console_app
from tests.console.test_console_browser import browser, screenshots, shot  # noqa: F401 (fixtures)
from tests.processes import free_port
from webhooks import create_app
from webhooks.enqueue import celery_enqueuer
from workers.app import app as celery_app
from workers.embedded import EmbeddedWorker


@pytest.fixture
def unconnected(make_system, memory_broker):
    """The receiver with the console and the connect flows, served where CONNECTOR_PUBLIC_URL says, on a system
    with no connection yet."""
    system = make_system(tenant=None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(webhook_key=system.xero.webhook_key, enqueue=celery_enqueuer(celery_app),
                     zoho_channels=system.deps.store.channels, admin_token=ADMIN_TOKEN,
                     oauth=system.deps.connector(), public_url=url, console=console_app(system).extensions[
                         "ml_connector.console"])
    served = serve(app, port=port, quiet=True)
    yield url, system
    served.shutdown()


def test_connect_both_sides_read_the_fit_report_and_follow_the_backfill(browser, unconnected,  # noqa: F811
                                                                        screenshots):  # noqa: F811
    url, system = unconnected
    tenant = system.xero.add_tenant("Kea Traders Ltd")
    system.xero.add_tenant("Tui Holdings Ltd")  # Xero shares both: the operator connects one
    contacts = [system.xero.create_contact(tenant, Name=f"Customer {i}")["ContactID"] for i in range(3)]
    system.xero.create_invoice(tenant, contacts[0], LINES, InvoiceNumber="INV-9001")
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900},
                                  http_credentials={"username": "operator", "password": ADMIN_TOKEN})
    page = context.new_page()
    try:
        page.goto("/console/connect")
        expect(page.locator("#step-fit")).to_contain_text("Connect Xero and Zoho first")
        shot(page, screenshots, "connect")

        page.get_by_role("button", name="Connect Xero").click()  # the sandbox consents and redirects back
        expect(page.locator("h1")).to_have_text("Choose the Xero organisations to connect")
        expect(page.locator("#organisations")).to_contain_text("Tui Holdings Ltd")
        page.get_by_label("Kea Traders Ltd").check()
        shot(page, screenshots, "connect-tenants")
        page.get_by_role("button", name="Connect the ticked organisations").click()
        expect(page.locator("h1")).to_have_text("Xero connected")
        expect(page.locator("body")).to_contain_text("Kea Traders Ltd")
        page.locator("#continue").click()
        [connection] = system.deps.store.connections.all()
        expect(page.locator("#step-zoho")).to_contain_text(f"#{connection.id} Kea Traders Ltd")
        page.get_by_label("Data centre").select_option("eu")
        page.get_by_role("button", name="Connect Zoho").click()
        expect(page.locator("h1")).to_have_text("Zoho CRM connected")
        page.locator("#continue").click()

        fit = page.locator(f"#fit-{connection.id}")
        expect(fit).to_contain_text("Not checked yet")
        fit.get_by_role("button", name="Check fit").click()
        expect(page.get_by_role("status")).to_contain_text("Checking")
        with EmbeddedWorker():
            # The page refreshes itself until the worker stored the report.
            expect(fit).to_contain_text("4 records in Xero: contacts 3, invoices 1", timeout=30_000)
            expect(fit).to_contain_text("Xero calls, 1 day(s) at the current budget")
            expect(fit).to_contain_text("edition:")
            expect(fit).to_contain_text("Zoho home currency: NZD")
            expect(fit).to_contain_text("Standard; base currency NZD; country NZ")  # GET /Organisation's Class
            shot(page, screenshots, "connect-fit")

            fit.get_by_role("button", name="Start the backfill").click()
            expect(page.locator("h1")).to_contain_text(f"Backfill of #{connection.id} Kea Traders Ltd")
            expect(page.locator("#backfill-state")).to_contain_text("Done", timeout=60_000)
            expect(page.locator("#backfill-records")).to_have_text("4")
        shot(page, screenshots, "connect-backfill")
        assert system.deps.store.links.get(connection.id, "contact", contacts[2]) is not None
    finally:
        context.close()
