"""A deployment as an operator makes one: the Procfile's command lines run as real processes with the
environment a deployment sets, against the real Redis and a throwaway PostgreSQL database, with the
sandboxes (served from this process on loopback) standing in for Xero and Zoho.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connector.sandbox.xero import XeroSandbox
from connector.sandbox.zoho import ZohoSandbox
from connector.settings import Settings
from connector.store.vault import Vault
from tests.conftest import redis_db, redis_url, require_redis
from tests.processes import Process
from tests.system import OnSandboxes, Sandboxed
from workers.demo import connect_sandbox_tenant
from workers.deps import configure

REPO = Path(__file__).resolve().parents[2]
# Its own Redis database, so a leftover message of another test's broker never reaches these workers.
DEPLOY_REDIS_DB = redis_db("deploy")
FLOWER_AUTH = ("ops", "flower-test-password")


@dataclass
class Deployment(OnSandboxes):
    env: dict[str, str]
    served: Sandboxed
    tenant_id: str
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    deps: object | None = None
    connection_id: int | None = None

    def start(self, name: str, command: str, **env: str) -> Process:
        """A process started from a command line as a PaaS starts it (``bash -c``), with the deployment's
        environment and nothing else, in its own process group."""
        process = Process(name, ["bash", "-c", f"exec {command}"], {**self.env, **env}, self.workdir,
                          cwd=self.workdir, inherit_env=False).start()
        self.processes.append(process)
        return process

    def run(self, command: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def connect(self):
        """Link the sandbox tenant and Zoho org, as `connector connect` would (the schema must exist)."""
        self.deps = configure(Settings.from_env(self.env))
        self.connection_id, _ = connect_sandbox_tenant(self.deps, self.served.sandboxes, "Deploy Test Ltd",
                                                       tenant_id=self.tenant_id)
        return self.deps.store.connections.get(self.connection_id)

    def latest_stage(self, record_type: str, record_id: str) -> str | None:
        return self.deps.store.audit.latest_stage(self.connection_id, record_type, record_id)


@pytest.fixture
def deployment(pg_database_url, tmp_path):
    """The production environment of a deployment (every variable the README asks for)."""
    require_redis(DEPLOY_REDIS_DB)
    served = Sandboxed.serve(XeroSandbox(), ZohoSandbox())
    broker = redis_url(DEPLOY_REDIS_DB)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "CONNECTOR_", "XERO_", "ZOHO_"))},
        **served.env(database_url=pg_database_url, data_dir=data_dir, vault_keys=Vault.generate_keyring("k1")),
        "REDIS_URL": broker, "CELERY_BROKER_URL": broker,
        "CONNECTOR_PUBLIC_URL": "https://connector.example.com",
        "CONNECTOR_ADMIN_TOKEN": "deploy-test-admin-token-0123456789abcdef",
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "XERO_BATCH_WINDOW": "0.2",
        "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
        # The venv's commands first, as a deployment's image has them on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("CONNECTOR_EMBEDDED", None)
    workdir = tmp_path / "app"
    workdir.mkdir()
    deployment = Deployment(env=env, served=served, tenant_id=served.xero.add_tenant("Deploy Test Ltd"),
                            workdir=workdir)
    yield deployment
    for process in reversed(deployment.processes):
        process.stop(whole_group=True)
    if deployment.deps is not None:
        deployment.deps.store.engine.dispose()
    served.close()
