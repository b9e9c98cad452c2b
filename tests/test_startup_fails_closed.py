"""Production entry points fail closed: without their configuration, with a malformed value, or with
Redis or the database out of reach, they refuse to start with exactly one line on stderr
(``configuration error: ...``) naming the variable, nothing on stdout, a non-zero exit and no traceback.

Every process is started for real, as the Procfile starts it: gunicorn (web), ``celery worker``,
``celery beat``, and the ``connector`` commands that touch production (Flower among them). The commands
run as forks of one interpreter that has imported the CLI already (tests/forked_cli.py), so every
variable can be tried on every command; gunicorn and celery take seconds to start, so they get a
representative set per variable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connector.store.vault import Vault
from tests.conftest import fresh_pg_database, redis_db, redis_url, require_redis
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = redis_db("startup")

CLIENTS = ["XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET"]
STORES = ["REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS"]
RECEIVER_NEEDS = [*STORES, "CONNECTOR_PUBLIC_URL", "XERO_WEBHOOK_KEY", *CLIENTS]
# What each process must refuse to start without: written out here, not read from the code under test.
NEEDS = {
    "web": RECEIVER_NEEDS,
    "worker": [*STORES, "CONNECTOR_PUBLIC_URL", *CLIENTS],
    "beat": [*STORES, "CONNECTOR_PUBLIC_URL"],
    "flower": ["REDIS_URL", "FLOWER_BASIC_AUTH"],
    "migrate": ["DATABASE_URL"],
    "status": STORES,
    "failures": STORES,
    "replay": STORES,
    "backfill": STORES,
    "check": STORES,
    "audit": STORES,
    "connections": STORES,
    "rotate-keys": STORES,
    "setup-zoho": STORES,
    "connect": [*STORES, "CONNECTOR_PUBLIC_URL", *CLIENTS],
    "receiver": RECEIVER_NEEDS,
    "run": RECEIVER_NEEDS,
}
COMMAND_ARGS = {
    "flower": ["flower", "--port", "1"], "replay": ["replay", "1", "contact", "c-1"], "backfill": ["backfill", "1"],
    "audit": ["audit", "1", "contact", "c-1"], "rotate-keys": ["rotate-keys", "--new-key-id", "k2"],
    "connect": ["connect", "xero", "--paste"], "receiver": ["receiver", "--port", "1"], "run": ["run", "--port", "1"],
}
SERVERS = ("web", "worker", "beat")  # started with gunicorn or celery: seconds each
COMMANDS = [name for name in NEEDS if name not in SERVERS]

SECRET = "hunter2"
# (variable, malformed value, what the line must say besides the variable's name)
MALFORMED = [
    ("REDIS_URL", f"http://:{SECRET}@127.0.0.1:6379", "not a usable URL"),
    ("DATABASE_URL", f"mysql://connector:{SECRET}@db/connector", "not a PostgreSQL"),
    ("DATABASE_URL", "sqlite:///connector.db", "SQLite"),
    ("CONNECTOR_VAULT_KEYS", "not-a-key-ring", "kid:<fernet key>"),
    ("CONNECTOR_VAULT_KEYS", f"k1:{SECRET}", "not a valid Fernet key"),
    ("CONNECTOR_PUBLIC_URL", "connector.example.com", "not a usable URL"),
    ("FLOWER_BASIC_AUTH", "ops", "user:password"),
]
# Optional settings every process reads: malformed, each stops every process too.
MALFORMED_OPTIONAL = [
    ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
    ("LOG_FORMAT", "xml", "json, text"),
    ("CELERY_VISIBILITY_TIMEOUT", "abc", "not a duration"),
    ("XERO_POLL_INTERVAL", "5 minutes please", "not a duration"),
    ("CONNECTOR_METRICS_PORT", "ninety-one-oh-one", "not a port number"),
]


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with nothing of the connector's configuration in it."""
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", **extra}


def production_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Everything every process needs; an empty override leaves a variable out."""
    env = bare_env(
        REDIS_URL=redis_url(REDIS_DB), DATABASE_URL=database_url, CONNECTOR_VAULT_KEYS=Vault.generate_keyring("k1"),
        CONNECTOR_PUBLIC_URL="https://connector.example.com", XERO_WEBHOOK_KEY="webhook-key",
        XERO_CLIENT_ID="xero-client", XERO_CLIENT_SECRET="xero-secret", ZOHO_CLIENT_ID="zoho-client",
        ZOHO_CLIENT_SECRET="zoho-secret", CONNECTOR_ADMIN_TOKEN="operator-token-0123456789",
        FLOWER_BASIC_AUTH="ops:flower-password", LOG_FORMAT="json",
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def unreachable_redis() -> str:
    return f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens once the probe is closed


def unreachable_database() -> str:
    return f"postgresql://connector:{SECRET}@127.0.0.1:{free_port()}/connector"


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def gunicorn(env, cwd):
    """The Procfile's web command (two workers: the refusal must still be one line)."""
    return run([sys.executable, "-m", "gunicorn", "--config", "python:webhooks.gunicorn_config",
                "--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "--threads", "4", "--timeout", "10",
                "webhooks.wsgi:app"], env, cwd)


def celery_worker(env, cwd):
    return run([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "xero,zoho,maintenance",
                "--concurrency", "1", "--loglevel", "INFO"], env, cwd)


def celery_beat(env, cwd):
    return run([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
                "--schedule", str(cwd / "beat-schedule")], env, cwd)


SERVER_START = {"web": gunicorn, "worker": celery_worker, "beat": celery_beat}


class ForkedCli:
    """`connector` commands as forks of one interpreter that imported the CLI already (tests/forked_cli.py)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.forked_cli"], cwd=ROOT, env=bare_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 60):
        self.process.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "timeout": timeout}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return subprocess.CompletedProcess(argv, answer["returncode"], answer["stdout"], answer["stderr"])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def cli():
    forked = ForkedCli()
    yield forked
    forked.close()


@pytest.fixture(scope="module")
def database_url(pg_admin):
    """One database for the module: a refusal never writes to it."""
    with fresh_pg_database(pg_admin) as url:
        yield url


def start(process: str, env: dict[str, str], cwd: Path, cli) -> subprocess.CompletedProcess:
    if process in SERVER_START:
        return SERVER_START[process](env, cwd)
    return cli(COMMAND_ARGS.get(process, [process]), env, cwd)


def refusal(result: subprocess.CompletedProcess) -> str:
    """The refusal's one line: asserts it is the only line on stderr, stdout is empty, the exit fails,
    and there is no traceback."""
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode not in (0, None), output
    assert "Traceback" not in result.stdout + result.stderr, output
    assert not result.stdout.strip(), output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: "), output
    return lines[0]


# --- missing ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("process", NEEDS)
def test_without_configuration_each_process_refuses_in_one_line_naming_what_it_needs(process, cli, tmp_path):
    line = refusal(start(process, bare_env(), tmp_path, cli))
    # Flower's own FLOWER_BASIC_AUTH is checked once Flower has what the broker side needs.
    for name in (n for n in NEEDS[process] if n != "FLOWER_BASIC_AUTH"):
        assert name in line, line
    assert "connector keygen" in line or "CONNECTOR_VAULT_KEYS" not in NEEDS[process]
    assert not list(tmp_path.rglob("*.db")), "no SQLite stand-in was created"


@pytest.mark.parametrize("server", ["worker", "beat"])
def test_connector_worker_and_beat_refuse_as_celery_does(server, cli, tmp_path):
    line = refusal(cli([server], bare_env(), tmp_path))
    assert all(name in line for name in NEEDS[server]), line


@pytest.mark.parametrize("process, variable", [(p, v) for p in COMMANDS for v in NEEDS[p]])
def test_a_command_without_one_variable_refuses_naming_it(process, variable, cli, database_url, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(start(process, production_env(database_url, **{variable: ""}), tmp_path, cli))
    assert variable in line, line


@pytest.mark.parametrize("process, variable", [
    ("web", "XERO_WEBHOOK_KEY"), ("worker", "ZOHO_CLIENT_SECRET"), ("beat", "DATABASE_URL"),
    ("beat", "CONNECTOR_PUBLIC_URL"),
])
def test_a_server_without_one_variable_refuses_naming_it(process, variable, cli, database_url, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(start(process, production_env(database_url, **{variable: ""}), tmp_path, cli))
    assert variable in line, line


# --- malformed --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("process, variable, value, says", [
    *[(p, *case) for p in COMMANDS for case in MALFORMED if case[0] in NEEDS[p]],
    *[(p, *case) for p in COMMANDS for case in MALFORMED_OPTIONAL],
])
def test_a_command_with_a_malformed_value_refuses_naming_the_variable(process, variable, value, says, cli,
                                                                      database_url, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(start(process, production_env(database_url, **{variable: value}), tmp_path, cli))
    assert variable in line and says in line and SECRET not in line, line
    assert not list(tmp_path.rglob("*.db")), "no SQLite database was created"


def malformed(variable: str, says: str) -> tuple[str, str, str]:
    return next(case for case in MALFORMED + MALFORMED_OPTIONAL if case[0] == variable and says in case[2])


@pytest.mark.parametrize("process, variable, value, says", [
    ("web", *malformed("CONNECTOR_VAULT_KEYS", "kid:")), ("web", *malformed("DATABASE_URL", "SQLite")),
    ("web", *malformed("LOG_LEVEL", "")), ("web", *malformed("CELERY_VISIBILITY_TIMEOUT", "")),
    ("worker", *malformed("CONNECTOR_VAULT_KEYS", "Fernet")), ("worker", *malformed("DATABASE_URL", "SQLite")),
    ("worker", *malformed("LOG_LEVEL", "")),
    ("beat", *malformed("CONNECTOR_VAULT_KEYS", "kid:")), ("beat", *malformed("DATABASE_URL", "SQLite")),
])
def test_a_server_with_a_malformed_value_refuses_naming_the_variable(process, variable, value, says, cli,
                                                                     database_url, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(start(process, production_env(database_url, **{variable: value}), tmp_path, cli))
    assert variable in line and says in line and SECRET not in line, line


def test_a_worker_whose_metrics_port_is_taken_refuses_naming_it(database_url, tmp_path):
    require_redis(REDIS_DB)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refusal(celery_worker(production_env(database_url, CONNECTOR_METRICS_PORT=str(port),
                                                    CONNECTOR_METRICS_DIR=str(tmp_path / "metrics")), tmp_path))
    assert f"CONNECTOR_METRICS_PORT: cannot listen on port {port}" in line, line


# --- unreachable ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("process", [p for p in NEEDS if "REDIS_URL" in NEEDS[p]])
def test_an_unreachable_redis_is_one_line_naming_redis_url(process, cli, database_url, tmp_path):
    line = refusal(start(process, production_env(database_url, REDIS_URL=unreachable_redis()), tmp_path, cli))
    assert re.search(r"REDIS_URL: cannot reach Redis at 127\.0\.0\.1:\d+", line) and SECRET not in line, line


@pytest.mark.parametrize("process", [p for p in NEEDS if "DATABASE_URL" in NEEDS[p]])
def test_an_unreachable_database_is_one_line_naming_database_url_without_its_password(process, cli, tmp_path):
    require_redis(REDIS_DB)
    line = refusal(start(process, production_env(unreachable_database()), tmp_path, cli))
    assert "DATABASE_URL: cannot open the database" in line and SECRET not in line, line


def test_the_forked_commands_answer_as_the_connector_script_does(cli, database_url, tmp_path):
    """The forks run what `python -m workers.cli` runs: the same refusal, word for word."""
    env = production_env(database_url, CONNECTOR_VAULT_KEYS="not-a-key-ring")
    script = run([sys.executable, "-m", "workers.cli", "status"], env, tmp_path)
    forked = cli(["status"], env, tmp_path)
    assert refusal(script) == refusal(forked)


# --- .env ---------------------------------------------------------------------------------------------------

def test_migrate_reads_dot_env_in_the_working_directory(pg_admin, tmp_path):
    with fresh_pg_database(pg_admin) as url:
        (tmp_path / ".env").write_text(f"# as .env.example is filled in\nDATABASE_URL={url}\nCONNECTOR_VAULT_KEYS=\n")
        result = run([sys.executable, "-m", "workers.cli", "migrate"], bare_env(), tmp_path)
        assert result.returncode == 0, result.stderr
        assert "database is at the latest schema" in result.stdout


def test_the_real_environment_wins_over_dot_env(pg_admin, tmp_path):
    with fresh_pg_database(pg_admin) as url:
        (tmp_path / ".env").write_text(f"DATABASE_URL={unreachable_database()}\n")
        result = run([sys.executable, "-m", "workers.cli", "migrate"], bare_env(DATABASE_URL=url), tmp_path)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("process", ["web", "worker", "beat", "flower", "status"])
def test_every_process_reads_dot_env(process, cli, database_url, tmp_path):
    """A malformed value in .env stops every process: each has read the file."""
    require_redis(REDIS_DB)
    (tmp_path / ".env").write_text("export XERO_POLL_INTERVAL='5 minutes please'  # read, and refused\n")
    line = refusal(start(process, production_env(database_url), tmp_path, cli))
    assert "XERO_POLL_INTERVAL: '5 minutes please' is not a duration" in line, line


def test_an_unreadable_line_of_dot_env_is_one_line_naming_it(cli, tmp_path):
    (tmp_path / ".env").write_text("REDIS_URL=redis://127.0.0.1:6379/0\nthis is not a variable\n")
    line = refusal(cli(["migrate"], bare_env(), tmp_path))
    assert ".env line 2" in line, line


def test_connector_env_file_names_another_file_or_none(cli, database_url, tmp_path):
    (tmp_path / "elsewhere.env").write_text("XERO_POLL_INTERVAL=soon\n")
    (tmp_path / ".env").write_text("XERO_POLL_INTERVAL=later\n")
    assert "'soon'" in refusal(cli(["status"], production_env(database_url, CONNECTOR_ENV_FILE="elsewhere.env"),
                                   tmp_path))
    env = production_env(database_url, CONNECTOR_VAULT_KEYS="not-a-key-ring")
    assert "CONNECTOR_VAULT_KEYS" in refusal(cli(["status"], {**env, "CONNECTOR_ENV_FILE": ""}, tmp_path))


# --- the control and the embedded mode -----------------------------------------------------------------------

def test_a_fully_configured_worker_starts(database_url, tmp_path):
    """The control: the same command with everything set gets past the checks and runs."""
    require_redis(REDIS_DB)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "maintenance", "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"startup-check-{os.getpid()}@%h"],
        env=production_env(database_url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def test_production_never_imports_the_embedded_stand_in(database_url, tmp_path):
    require_redis(REDIS_DB)
    probe = ("import sys, webhooks.wsgi, workers.app; app = webhooks.wsgi.app; "
             "client = app.test_client(); assert client.get('/healthz').status_code == 200; "
             "print('fakeredis' in sys.modules, 'lupa' in sys.modules)")
    result = run([sys.executable, "-c", probe], production_env(database_url), tmp_path)
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
