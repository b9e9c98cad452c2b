"""Every console page is the operator's only, and every form needs the console's CSRF token."""

from __future__ import annotations

import re

from tests.console.console_kit import ADMIN_TOKEN, basic, console_app

PAGES = ["/console/", "/console/records", "/console/failures", "/console/mapping"]


def test_every_console_page_refuses_without_the_admin_token(console):
    client, _ = console
    for path in PAGES:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=basic("wrong-token-wrong-token-wrong")).status_code == 401, path
        assert client.get(path, headers=basic(user="admin")).status_code == 401, path
        assert client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200, path
        assert client.get(path, headers=basic()).status_code == 200, path


def test_the_console_is_closed_when_no_admin_token_is_configured(system, memory_broker):
    client = console_app(system, admin_token="").test_client()
    for path in PAGES:
        answer = client.get(path, headers=basic(""))
        assert answer.status_code == 401 and b"CONNECTOR_ADMIN_TOKEN is not set" in answer.data, path


def test_the_connections_page_shows_each_connections_health(console):
    client, system = console
    page = client.get("/console/", headers=basic()).data.decode()
    assert f"#{system.connection_id} Console Test Ltd" in page
    assert "active" in page and "Tokens" in page and "expires" in page
    assert re.search(r"Xero calls today</th><td>\d+ used, \d+ projected of \d+", page)
