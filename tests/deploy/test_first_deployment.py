"""README "First deployment", followed as written, start to finish.

The section's shell commands are read from the README and run literally (bash, the deployment's
environment, real processes), so the README and this test cannot drift apart; the URLs it tells the
operator to register or open are taken from it too. The Procfile's processes are started where it
says so. The parts a person plays at the vendors and in a browser are played by the sandboxes (which
stand in for Xero and Zoho) and by an HTTP client sending what a browser sends.
"""

from __future__ import annotations

import html
import json
import re
import signal
import subprocess
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from connector.sandbox.common import serve
from connector.sandbox.xero_seed import seed_demo_org
from connector.settings import Settings
from connector.store import audit as stages
from tests.connections.conftest import browse
from tests.processes import ROOT as REPO
from tests.processes import free_port, printed_lines_until_url, procfile, wait_for_http
from workers.deps import configure
from workers.embedded import wait_until

pytestmark = pytest.mark.integration

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# What this test plays of each step; a step added to the README must be played here too.
STEPS = ["Make the secrets", "Register the connector with Xero and Zoho", "Create the schema",
         "Start `web`, `worker` and `beat`", "Let Xero check the webhook", "Connect Xero", "Connect Zoho",
         "Create the Zoho fields and check both sides", "Import what is already in Xero"]


@dataclass
class Step:
    title: str
    text: str
    commands: list[str]  # the lines of its ```sh blocks, without their comments
    comments: list[str]

    def urls(self, public_url: str) -> list[str]:
        """The receiver's URLs it names, as `$CONNECTOR_PUBLIC_URL/...`, on this deployment."""
        return [public_url + path for path in re.findall(r"`\$CONNECTOR_PUBLIC_URL(/[^`\s]*)`", self.text)]


def first_deployment() -> list[Step]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## First deployment\n") + 1:]
    section = section[:section.index("\n## ")]
    parts = re.split(r"^(\d+)\. \*\*(.+?)\*\*:?", section, flags=re.M)
    steps = []
    for number, title, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        assert int(number) == len(steps) + 1, f"README step {number} is out of order"
        lines = [line.strip() for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S)
                 for line in block.splitlines() if line.strip()]
        split = [re.match(r"(.*?)(?:\s+#\s*(.*))?$", line).groups() for line in lines]
        steps.append(Step(title.strip().rstrip(".:"), body, [c for c, _ in split], [n or "" for _, n in split]))
    return steps


def visible_text(page: requests.Response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


def cli_redirect_uri(deployment, command: str) -> str:
    """Run the README's terminal alternative until it prints the authorise URL; its redirect_uri."""
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=deployment.workdir, env=deployment.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        return parse_qs(urlsplit(printed_lines_until_url(process)[-1]).query)["redirect_uri"][0]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def answer_200(environ, start_response):
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def test_the_first_deployment_as_the_readme_lays_it_out(deployment):
    steps = first_deployment()
    assert [s.title for s in steps] == STEPS
    step = dict(zip(STEPS, steps))
    xero, zoho, tenant = deployment.xero, deployment.zoho, deployment.tenant_id
    env = deployment.env
    web_port = free_port()
    public_url = env["CONNECTOR_PUBLIC_URL"] = f"http://127.0.0.1:{web_port}"
    for made_in_step_1 in ("CONNECTOR_VAULT_KEYS", "CONNECTOR_ADMIN_TOKEN"):
        env.pop(made_in_step_1)

    # The organisation has records from before the connector: their events went nowhere.
    existing = seed_demo_org(xero, tenant, contacts=4)
    with serve(answer_200) as elsewhere:
        assert set(xero.deliver_webhooks(elsewhere.url)) == {200}

    # 1. Each command prints the value of the variable its comment names.
    secrets = step["Make the secrets"]
    assert secrets.comments == ["CONNECTOR_VAULT_KEYS", "CONNECTOR_ADMIN_TOKEN"]
    for command, variable in zip(secrets.commands, secrets.comments):
        done = deployment.run(command)
        assert done.returncode == 0, done.stderr
        [env[variable]] = done.stdout.split()
    operator = ("operator", env["CONNECTOR_ADMIN_TOKEN"])

    # 2. What it says to register is what the receiver uses (checked below, where each is used).
    registered = step["Register the connector with Xero and Zoho"]
    callback_xero, hook_url, callback_zoho = registered.urls(public_url)
    assert (urlsplit(callback_xero).path, urlsplit(hook_url).path, urlsplit(callback_zoho).path) == (
        "/oauth/xero/callback", "/webhooks/xero", "/oauth/zoho/callback")
    local_callbacks = re.findall(r"`(http://localhost:8765/[^`]*)`", registered.text)
    assert "XERO_WEBHOOK_KEY" in registered.text
    env["XERO_WEBHOOK_KEY"] = xero.webhook_key  # the key Xero shows for the webhook

    # 3.
    for command in step["Create the schema"].commands:
        done = deployment.run(command)
        assert done.returncode == 0, done.stderr

    # 4. The Procfile's processes; then the step's command, until the receiver answers.
    commands = procfile()
    web = deployment.start("web", commands["web"], PORT=str(web_port))
    worker = deployment.start("worker", commands["worker"])
    beat = deployment.start("beat", commands["beat"])
    wait_for_http(f"{public_url}/healthz", timeout=60, process=web)
    [health] = step["Start `web`, `worker` and `beat`"].commands
    assert wait_until(lambda: deployment.run(health, timeout=10).returncode == 0, timeout=60), web.tail(3000)
    assert json.loads(deployment.run(health).stdout) == {"status": "ok"}

    # 5. Xero's check of the registered webhook URL; then events of the not yet connected organisation.
    assert xero.intent_to_receive(hook_url).ok
    early = xero.create_contact(tenant, Name="Early Webhook Ltd", EmailAddress="ap@early.example")["ContactID"]
    assert set(xero.deliver_webhooks(hook_url)) == {200}
    deps = deployment.deps = configure(Settings.from_env(env))
    assert wait_until(lambda: deps.held_xero_events.count(tenant) == 1, timeout=60), worker.tail(3000)

    # 6. In a browser, as the operator: the page names the connection; 1, as the commands below assume.
    browser = requests.Session()
    browser.headers["Accept"] = BROWSER_ACCEPT
    [xero_start] = step["Connect Xero"].urls(public_url)
    page = browse(browser, xero_start, receiver_url=public_url, auth=operator)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text
    assert "Deploy Test Ltd" in visible_text(page) and "connection 1" in visible_text(page)
    [terminal] = re.findall(r"From a terminal instead: `([^`]+)`", step["Connect Xero"].text)
    assert cli_redirect_uri(deployment, terminal) == local_callbacks[0]  # registered in step 2

    # 7. The page's link is the README's.
    [zoho_start] = step["Connect Zoho"].urls(public_url)
    links = [urljoin(public_url, html.unescape(h)) for h in re.findall(r'href="([^"]+)"', page.text)]
    assert zoho_start in links
    page = browse(browser, zoho_start, receiver_url=public_url, auth=operator)
    assert page.status_code == 200, page.text
    assert zoho.org_id in visible_text(page)
    [terminal] = re.findall(r"From a terminal: `([^`]+)`", step["Connect Zoho"].text)
    assert cli_redirect_uri(deployment, terminal) == local_callbacks[1]
    assert zoho.channels(), "connecting Zoho opens the notification channel"

    # 8. and 9.: every command succeeds (check and backfill exit 1 when something is not right).
    for title in ("Create the Zoho fields and check both sides", "Import what is already in Xero"):
        for command in step[title].commands:
            done = deployment.run(command, timeout=300)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}\n{worker.tail(3000)}"
            if command.startswith("connector check"):
                assert "PROBLEM" not in done.stdout and done.stdout.count(": ok") == 2, done.stdout

    # Everything is in Zoho: the records from before, and the webhook that came before the connection.
    deployment.connection_id = 1
    audit = deps.store.audit
    assert wait_until(lambda: all(audit.latest_stage(1, "contact", i) in (stages.WRITTEN, stages.SKIPPED)
                                  for i in [*existing, early]), timeout=120), worker.tail(4000)
    in_zoho = {a.get("Xero_Contact_ID") for a in zoho.records("Accounts")}
    assert {*existing, early} <= in_zoho
    assert audit.failures() == []
    assert audit.trail(1, "contact", early)[0].detail.get("held_until_connected") is True
    for process in (web, worker, beat):
        assert process.alive(), f"{process.name} exited:\n{process.tail(3000)}"
