"""Fixtures of the fault suite: one deployment for the package (processes are restarted by the tests that
kill them, and brought back before the next test), and a fresh Xero tenant + connection per test, so each
test's invariant covers exactly its own records."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from connector.mapping import zoho_fields as zf
from connector.settings import Settings
from connector.store.vault import Vault
from tests.conftest import fresh_pg_database, sandbox_env
from tests.faults.harness import Stack, start_sandbox
from tests.processes import RedisServer, free_port, wait_for
from tests.faults.invariants import violations
from workers.demo import save_sandbox_grants

_names = itertools.count(1)
# The deployment runs with short recovery timings (the same mechanisms, compressed), so a test that
# kills a process waits seconds, not the production minutes: a dead worker's claim lapses after
# LEASE_SECONDS, beat sweeps every SWEEP_SECONDS, and a dead parent's messages return after VISIBILITY_SECONDS.
# The longest broker countdown (a retry's backoff cap) is 0.4 x VISIBILITY_SECONDS: 12 s here, so work retried
# through an outage resumes at most that long after it ends, and a 30 s PostgreSQL outage still outlasts
# several retries; the task time limits (0.7 and 0.8 x) stay well above any held call here (4 s at most).
LEASE_SECONDS, SWEEP_SECONDS, VISIBILITY_SECONDS = 15, 5, 30
# and a Zoho 429 parks the work for ZOHO_RATE_LIMIT_WAIT seconds instead of the production 30 (still a broker
# countdown, as 30 s is in production: both are below the longest countdown the visibility timeout allows).
ZOHO_RATE_LIMIT_WAIT = 2
# How long orphaned work may take to come back: a lease plus a sweep, or the visibility timeout, with
# slack for a busy machine (and for the retries a fault adds on top).
RECOVERY_SECONDS = 150.0


@pytest.fixture(scope="package")
def stack(pg_admin, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faults")
    redis = RedisServer(workdir)
    redis.start()
    sandbox, control = start_sandbox(workdir)
    info = control.call("GET", "info")
    with fresh_pg_database(pg_admin) as database_url:
        receiver_port = free_port()
        # The sandboxes run in a process of their own: what a worker needs of them comes from its control API.
        xero, zoho = SimpleNamespace(**info["xero"]), SimpleNamespace(**info["zoho"])
        env = {
            **sandbox_env(database_url=database_url, data_dir=workdir / "data", vault_keys=Vault.generate_keyring("k1"),
                          xero=xero, xero_url=xero.url, zoho=zoho, zoho_url=zoho.url),
            "REDIS_URL": redis.url, "CELERY_BROKER_URL": redis.url,
            "CONNECTOR_PUBLIC_URL": f"http://127.0.0.1:{receiver_port}", "XERO_BATCH_WINDOW": "0.5", "LOG_FORMAT": "text",
            "CONNECTOR_LEASE_SECONDS": str(LEASE_SECONDS), "CONNECTOR_SWEEP_INTERVAL": str(SWEEP_SECONDS),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_SECONDS), "ZOHO_RATE_LIMIT_WAIT": str(ZOHO_RATE_LIMIT_WAIT),
        }
        stack = Stack(workdir=workdir, redis=redis, database_url=database_url,
                      database_name=database_url.rsplit("/", 1)[1], sandbox=sandbox, control=control, env=env,
                      receiver_port=receiver_port)
        try:
            migrated = stack.run("migrate")
            assert migrated.returncode == 0, migrated.stdout + migrated.stderr
            stack.start_receiver(wait=False)  # the three start side by side
            stack.start_worker(wait=False)
            stack.start_beat()
            stack.wait_for_receiver()
            stack.wait_for_worker()
            yield stack
        finally:
            stack.stop_all()
            from workers.deps import get_deps

            try:
                get_deps().store.engine.dispose()  # before the database is dropped
            except Exception:
                pass


@pytest.fixture(scope="package")
def deps(stack):
    """The store, credentials and Redis of the deployment, as this test process sees them."""
    from workers.deps import configure

    deps = configure(Settings.from_env(stack.env))
    yield deps
    deps.store.engine.dispose()


@dataclass
class Org:
    """One Xero tenant connected to the Zoho org: the records of one test."""

    stack: Stack
    deps: object
    tenant_id: str
    connection_id: int
    xero_refresh_token: str
    zoho_refresh_token: str
    sharing: tuple[int, ...] = ()  # the other connections sent to the same Zoho org

    def seed(self, contacts: int, invoices_per_contact: int = 0) -> dict:
        return self.stack.control.call("POST", "xero/seed", json_body={
            "tenant_id": self.tenant_id, "contacts": contacts, "invoices": invoices_per_contact})

    def seed_invoices(self, contact_ids: list[str], per_contact: int = 1) -> list[str]:
        return self.stack.control.call("POST", "xero/seed", json_body={
            "tenant_id": self.tenant_id, "invoices_for": contact_ids, "invoices": per_contact})["invoice_ids"]

    def invoices_for_deals(self, count: int) -> dict[str, str]:
        """For ``count`` active contacts: a person opens a deal on its Account in Zoho (once the Account is
        there), and Xero gets two invoices whose Reference names that deal, so the reference rule links
        them. Returns the deal of each new invoice."""
        contact_ids = [c["ContactID"] for c in self.stack.control.xero_state(self.tenant_id)["contacts"]
                       if c["ContactStatus"] == "ACTIVE"][:count]
        accounts: dict[str, str] = {}

        def synced() -> bool:
            found = {a.get(zf.ACCOUNT_XERO_ID): a["id"] for a in self.stack.control.zoho_records("Accounts")["Accounts"]}
            accounts.update({c: found[c] for c in contact_ids if c in found})
            return len(accounts) == len(contact_ids)

        wait_for(synced, timeout=120, interval=1.0, what="the contacts' Accounts in Zoho")
        deal_of: dict[str, str] = {}
        for number, contact_id in enumerate(contact_ids, 1):
            deal = self.stack.control.call("POST", "zoho/person-create", json_body={"module": "Deals", "fields": {
                "Deal_Name": f"Fault deal {number}", "Account_Name": {"id": accounts[contact_id]},
                "Closing_Date": "2026-12-31", "Stage": "Qualification"}})["id"]
            for invoice_id in self.stack.control.call("POST", "xero/seed", json_body={
                    "tenant_id": self.tenant_id, "invoices_for": [contact_id], "invoices": 2, "seed": number,
                    "reference": f"PO for deal {deal}"})["invoice_ids"]:
                deal_of[invoice_id] = deal
        return deal_of

    def zoho_person(self, contact_id: str, key: str | None = None) -> dict:
        """The Zoho Contact of one of the contact's people (the one with this person key, else the first)."""
        people = self.stack.control.zoho_records("Contacts")["Contacts"]
        return next(p for p in people if str(p.get(zf.CONTACT_PERSON_KEY, "")).startswith(key or contact_id))

    def edit_in_zoho(self, contact_id: str, last_name: str, key: str | None = None) -> None:
        """A person changes the last name of one of the contact's people in Zoho."""
        self.stack.control.call("POST", "zoho/person-edit", json_body={
            "module": "Contacts", "id": self.zoho_person(contact_id, key)["id"], "changes": {"Last_Name": last_name}})

    def xero_has(self, contact_id: str, last_name: str) -> bool:
        contact = next(c for c in self.stack.control.xero_state(self.tenant_id)["contacts"]
                       if c["ContactID"] == contact_id)
        return last_name in [contact.get("LastName"), *[p.get("LastName") for p in contact.get("ContactPersons", [])]]

    def violations(self, **options) -> list[str]:
        return violations(self.stack.control, self.deps.store.audit, connection_id=self.connection_id,
                          tenant_id=self.tenant_id, sharing=self.sharing, **options)

    def assert_invariants(self, timeout: float = 90.0, **options) -> None:
        """Wait until the promise holds; fail with what still breaks it (and the processes' logs)."""
        last: list[list[str]] = [[]]

        def holds() -> bool:
            last[0] = self.violations(**options)
            return not last[0]

        try:
            wait_for(holds, timeout=timeout, interval=1.0, what="the invariants")
        except AssertionError:
            problems = last[0]
            raise AssertionError(f"{len(problems)} invariant violation(s):\n" + "\n".join(problems[:25])
                                 + f"\n\n{self.stack.logs()}") from None


@pytest.fixture
def org(stack, deps) -> Org:
    stack.ensure_running()
    stack.control.clear_faults()
    name = f"Fault Test {next(_names)} Ltd"
    grant = stack.control.call("POST", "xero/tenants", json_body={"name": name})
    zoho_refresh = stack.control.call("POST", "zoho/grants")["refresh_token"]
    connection = deps.store.connections.create(name=name, xero_tenant_id=grant["tenant_id"])
    save_sandbox_grants(deps, connection.id, grant, zoho_refresh)
    yield Org(stack, deps, grant["tenant_id"], connection.id, grant["refresh_token"], zoho_refresh)
    stack.control.clear_faults()


@pytest.fixture
def shared_zoho_org(org) -> tuple[Org, Org]:
    """``org`` and a second tenant sent to its Zoho org as a person does it (`connector connect xero --tenant
    B --zoho-from A`): one Zoho token set and one notification channel, held by the first connection."""
    stack, deps = org.stack, org.deps
    name = f"Fault Test {next(_names)} Ltd"
    tenant_id = stack.control.call("POST", "xero/tenants", json_body={"name": name})["tenant_id"]
    stack.connect("xero", "--tenant", tenant_id, "--zoho-from", str(org.connection_id))
    second = deps.store.connections.by_tenant(tenant_id)
    deps.ensure_zoho_channel(org.connection_id)  # as `connector connect zoho` did for the first tenant
    assert deps.store.channels.for_connection(second.id) == []
    org.sharing = (second.id,)
    xero_tokens = deps.credentials.load(second.id, "xero").tokens
    return org, Org(stack, deps, tenant_id, second.id, xero_tokens.refresh_token.reveal(), org.zoho_refresh_token,
                    sharing=(org.connection_id,))


def deliver_until_accepted(stack: Stack, *, timeout: float = 120.0, **options) -> list[int]:
    """Deliver every pending Xero webhook as Xero does: a batch answered non-2xx is sent again later."""
    statuses: list[int] = []

    def all_delivered() -> bool:
        statuses.extend(stack.control.deliver(stack.hook_url, **options))
        return stack.control.pending_webhooks() == 0

    wait_for(all_delivered, timeout=timeout, interval=0.5, what="every webhook to be accepted")
    return statuses
