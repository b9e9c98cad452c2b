"""Every console page is the operator's only, and every form needs the console's CSRF token."""

from __future__ import annotations

import re

from tests.console.console_kit import ADMIN_TOKEN, basic, console_app, failed_contact
from webhooks.console import csrf_token

PAGES = ["/console/", "/console/records", "/console/failures", "/console/mapping", "/console/connect"]


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


def test_every_console_form_refuses_a_post_without_the_console_csrf_token(console):
    """Whatever a console route changes, it changes nothing without the token its own pages embed: every POST
    route under /console (those added later too) answers 403 to none, a forged and a tampered token."""
    client, system = console
    page = client.get("/console/failures", headers=basic()).data.decode()
    assert 'name="csrf_token"' not in page  # no failures, no form: the token comes with the forms
    failed_contact(system, "Guarded Ltd")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/failures", headers=basic())
                      .data.decode()).group(1)
    # A route's parameters filled in with the system's connection (a number every such route takes).
    posts = [re.sub(r"<[^>]+>", str(system.connection_id), rule.rule) for rule in client.application.url_map.iter_rules()
             if rule.rule.startswith("/console") and "POST" in (rule.methods or ())]
    assert "/console/failures" in posts
    other_receivers_token = console_app(system, admin_token="another-admin-token-0123456789").test_client()
    with other_receivers_token.application.test_request_context():
        foreign = csrf_token()
    for path in posts:
        for bad in (None, "", "forged", token[:-3] + "abc", foreign):
            form = {"action": "dismiss-selected", "reason": "x", **({"csrf_token": bad} if bad is not None else {})}
            answer = client.post(path, data=form, headers=basic())
            assert answer.status_code == 403, (path, bad)
        assert client.post(path, data={"csrf_token": token}).status_code == 401, path
