"""The console in a real headless Chromium (Debian's chromium, driven by Playwright): an operator finds a record
by its invoice number and opens its trail, replays a failure and sees it go once a worker ran it, and dismisses
one with a reason. The receiver is served over HTTP (werkzeug, a thread) on the embedded system; the replay is
queued on the in-process broker and run by an EmbeddedWorker. Screenshots land in CONSOLE_SCREENSHOTS when set
(`make screenshots` refreshes the README's, docs/console/), else in a temporary folder: a test run leaves the
working tree as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from connector.replay import list_failures
from connector.sandbox.common import serve
from tests.console.console_kit import ADMIN_TOKEN, console_app, failed_contact, synced_invoice
from workers.embedded import EmbeddedWorker, wait_until

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    # Fails, never skips: `make test` installs it (scripts/ensure-chromium).
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run scripts/ensure-chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served_console(system, memory_broker):
    served = serve(console_app(system), quiet=True)
    yield served.url, system
    served.shutdown()


@pytest.fixture
def operator(browser, served_console):
    """A browser tab logged in as the operator (HTTP Basic, as a person's browser asks), and the system."""
    url, system = served_console
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 820},
                                  http_credentials={"username": "operator", "password": ADMIN_TOKEN})
    yield context.new_page(), system
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_browser_without_the_admin_token_is_refused(browser, served_console):
    url, _ = served_console
    context = browser.new_context(base_url=url)  # no credentials: Chromium gives up on the Basic challenge
    try:
        for path in ("/console/", "/console/records", "/console/failures", "/console/mapping"):
            answer = context.request.get(path)
            assert answer.status == 401 and "Basic" in answer.headers["www-authenticate"], path
    finally:
        context.close()


def test_find_a_record_by_invoice_number_and_open_its_trail(operator, screenshots):
    page, system = operator
    _, invoice = synced_invoice(system)
    page.goto("/console/")
    expect(page.locator(f"#connection-{system.connection_id} h2")).to_contain_text("Console Test Ltd")
    shot(page, screenshots, "connections")

    page.get_by_role("link", name="Records").click()
    page.get_by_label("Xero id, invoice or credit note number, contact name or email").fill("INV-7001")
    page.keyboard.press("Enter")
    result = page.locator("#results a", has_text="INV-7001")
    expect(result).to_have_count(1)
    shot(page, screenshots, "records")

    result.click()
    expect(page.locator("h1")).to_have_text("Invoice INV-7001")
    expect(page.locator("#trail")).to_contain_text("written")
    link = system.deps.store.links.get(system.connection_id, "invoice", invoice)
    expect(page.locator("#zoho-link a")).to_have_attribute("href", f"{system.settings.zoho_accounts_url}/crm/tab/"
                                                                  f"Invoices/{link.zoho_id}")
    shot(page, screenshots, "record-trail")

    page.get_by_role("link", name="preview its mapping").click()
    expect(page.locator("#preview")).to_contain_text("INV-7001")
    shot(page, screenshots, "mapping")


def test_replay_a_failure_and_see_it_gone_once_a_worker_ran_it(operator, screenshots):
    page, system = operator
    broken = failed_contact(system, "Broken Pipe Ltd")
    page.goto("/console/failures")
    row = page.locator("#failures tr", has_text=broken)
    expect(row).to_contain_text("TransientError")
    shot(page, screenshots, "failures")

    row.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Queued a replay of 1 record(s)")
    with EmbeddedWorker():
        assert wait_until(lambda: not list_failures(system.deps.store), timeout=20)
    page.reload()
    expect(page.locator("main")).to_contain_text("No failures")
    assert system.deps.store.links.get(system.connection_id, "contact", broken) is not None


def test_dismiss_a_failure_with_a_reason(operator, screenshots):
    page, system = operator
    kept, dismissed = failed_contact(system, "Kept Ltd"), failed_contact(system, "Dismissed Ltd")
    page.goto("/console/failures")
    page.get_by_label(f"select contact {dismissed}").check()
    page.get_by_label("Reason").fill("deleted in Xero on purpose")
    shot(page, screenshots, "failures-dismiss")
    page.get_by_role("button", name="Dismiss selected").click()

    expect(page.get_by_role("status")).to_contain_text("Dismissed 1 failure(s)")
    expect(page.locator("#failures")).to_contain_text(kept)
    expect(page.locator("#failures")).not_to_contain_text(dismissed)
    page.goto(f"/console/records/{system.connection_id}/contact/{dismissed}")
    expect(page.locator("#trail tr").last).to_contain_text("dismissed")
    expect(page.locator("#trail tr").last).to_contain_text("deleted in Xero on purpose")
