"""Production entry points fail closed: without their configuration, or with Redis or the
database out of reach, they refuse to start in one line naming the variable, with a non-zero
exit and no traceback. Each is started as a real process, as the Procfile starts it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.store.vault import Vault
from tests.conftest import redis_url, require_redis
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = 13
PRODUCTION_NEEDS = ["REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL"]


def closed_port() -> int:
    return free_port()  # nothing listens once the probe is closed


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with nothing of the connector's configuration in it."""
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", **extra}


def production_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = bare_env(
        REDIS_URL=redis_url(REDIS_DB), DATABASE_URL=database_url, CONNECTOR_VAULT_KEYS=Vault.generate_keyring("k1"),
        CONNECTOR_PUBLIC_URL="https://connector.example.com", XERO_WEBHOOK_KEY="webhook-key",
        XERO_CLIENT_ID="xero-client", XERO_CLIENT_SECRET="xero-secret", ZOHO_CLIENT_ID="zoho-client",
        ZOHO_CLIENT_SECRET="zoho-secret", CONNECTOR_ADMIN_TOKEN="operator-token-0123456789",
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def gunicorn(env, cwd):
    return run([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{closed_port()}", "--workers", "1",
                "webhooks.wsgi:app"], env, cwd)


def celery_worker(env, cwd):
    return run([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "xero,zoho,maintenance",
                "--concurrency", "1", "--loglevel", "INFO"], env, cwd)


def celery_beat(env, cwd):
    return run([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
                "--schedule", str(cwd / "beat-schedule")], env, cwd)


def connector(*args: str):
    def start(env, cwd):
        return run([sys.executable, "-m", "workers.cli", *args], env, cwd)

    return start


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one line of the refusal; asserts there is exactly one, no traceback, and a failing exit."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "configuration error" in line]
    assert len(lines) == 1, output
    return lines[0]


ENTRY_POINTS = {
    "gunicorn webhooks.wsgi:app": (gunicorn, [*PRODUCTION_NEEDS, "XERO_WEBHOOK_KEY", "XERO_CLIENT_ID",
                                              "ZOHO_CLIENT_SECRET"]),
    "celery worker": (celery_worker, [*PRODUCTION_NEEDS, "XERO_CLIENT_ID", "ZOHO_CLIENT_SECRET"]),
    "celery beat": (celery_beat, ["REDIS_URL"]),
    "connector replay": (connector("replay", "1", "contact", "c-1"),
                         ["REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS"]),
    "connector migrate": (connector("migrate"), ["DATABASE_URL"]),
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_without_configuration_each_entry_point_refuses_in_one_line(entry_point, tmp_path):
    start, needed = ENTRY_POINTS[entry_point]
    line = refusal(start(bare_env(), tmp_path))
    for name in needed:
        assert name in line, line
    assert "connector keygen" in line or "CONNECTOR_VAULT_KEYS" not in needed
    assert not list(tmp_path.glob("*.db")), "no SQLite stand-in was created"


@pytest.mark.parametrize("entry_point", ["gunicorn webhooks.wsgi:app", "celery worker", "celery beat"])
def test_an_unreachable_redis_is_one_line_naming_redis_url(entry_point, pg_database_url, tmp_path):
    start, _ = ENTRY_POINTS[entry_point]
    line = refusal(start(production_env(pg_database_url, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"), tmp_path))
    assert re.search(r"REDIS_URL: cannot reach Redis at 127\.0\.0\.1:\d+", line), line


@pytest.mark.parametrize("entry_point", ["gunicorn webhooks.wsgi:app", "connector migrate"])
def test_an_unreachable_database_is_one_line_naming_database_url_without_its_password(entry_point, tmp_path):
    require_redis(REDIS_DB)
    start, _ = ENTRY_POINTS[entry_point]
    url = f"postgresql://connector:hunter2-password@127.0.0.1:{closed_port()}/connector"
    line = refusal(start(production_env(url), tmp_path))
    assert "DATABASE_URL: cannot open the database" in line and "hunter2" not in line, line


# Every variable's parsing is covered in tests/test_settings.py; these show it reaches the process.
@pytest.mark.parametrize("variable, value", [
    ("XERO_POLL_INTERVAL", "5 minutes please"),
    ("DATABASE_URL", "mysql://connector:hunter2@db/connector"),
])
def test_a_malformed_value_is_one_line_naming_the_variable(variable, value, pg_database_url, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(celery_worker(production_env(pg_database_url, **{variable: value}), tmp_path))
    assert f"{variable}:" in line and "hunter2" not in line, line


def test_a_fully_configured_worker_starts(pg_database_url, tmp_path):
    """The control: the same command with everything set gets past the checks and runs."""
    require_redis(REDIS_DB)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "maintenance", "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"startup-check-{os.getpid()}@%h"],
        env=production_env(pg_database_url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in worker.stdout:
            seen.append(line)
            if "ready." in line:
                break
        assert any("ready." in line for line in seen), "".join(seen)
        assert not any("configuration error" in line for line in seen)
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_production_never_imports_the_embedded_stand_in(pg_database_url, tmp_path):
    require_redis(REDIS_DB)
    probe = ("import sys, webhooks.wsgi, workers.app; app = webhooks.wsgi.app; "
             "client = app.test_client(); assert client.get('/healthz').status_code == 200; "
             "print('fakeredis' in sys.modules, 'lupa' in sys.modules)")
    result = run([sys.executable, "-c", probe], production_env(pg_database_url), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_the_embedded_mode_is_explicit(tmp_path):
    """CONNECTOR_EMBEDDED=1 lets a command run on the stand-ins (SQLite in the data dir)."""
    result = run([sys.executable, "-m", "workers.cli", "migrate"],
                 bare_env(CONNECTOR_EMBEDDED="1", CONNECTOR_DATA_DIR=str(tmp_path / "data")), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "connector.db").exists()


def test_keygen_prints_a_key_ring_the_vault_accepts(tmp_path, capsys):
    from workers.cli import main

    result = run([sys.executable, "-m", "workers.cli", "keygen"], bare_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    ring = result.stdout.strip()
    assert re.fullmatch(r"k1:[A-Za-z0-9_-]{43}=", ring), ring
    vault = Vault(ring)
    assert vault.key_ids == ("k1",) and vault.decrypt(vault.encrypt("token")) == "token"
    assert main(["keygen", "--key-id", "k2"]) == 0
    again = capsys.readouterr().out.strip()
    assert again.startswith("k2:") and again != ring and Vault(again).key_ids == ("k2",)
