"""The `connector` command as an operator meets it: a version, help text on every argument, and a
worker that refuses a bad mapping file when it starts (not at the first push)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from workers.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def _parsers(parser: argparse.ArgumentParser, path: str = "connector"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_argument_has_help_text():
    parser = build_parser()
    missing = []
    for path, sub in _parsers(parser):
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {choice.dest}" for choice in action._choices_actions if not choice.help]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_version_prints_the_installed_version():
    result = subprocess.run([sys.executable, "-m", "workers.cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"connector {version('ml-connector')}"


@pytest.mark.integration
def test_a_bad_mapping_file_stops_the_worker_at_start_with_the_line_at_fault(deployment):
    (deployment.workdir / "mapping.yaml").write_text("trigger: []\nfields:\n  Accounts:\n    Fax: {from: 7}\n")
    deployment.env["CONNECTOR_DATA_DIR"] = str(deployment.workdir)
    from tests.processes import procfile

    worker = deployment.start("worker", procfile()["worker"])
    assert worker.proc.wait(timeout=60) != 0
    output = worker.output()
    assert "mapping" in output and "line 4" in output and "Fax" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.integration
def test_a_bad_log_setting_stops_every_process_with_one_line_naming_it(deployment):
    from tests.processes import procfile
    from tests.processes import free_port

    deployment.env["LOG_FORMAT"] = "yaml"
    # gunicorn's logger, Celery's setup_logging (worker and beat share it) and the CLI's.
    for name, command in procfile().items():
        if name not in ("web", "worker", "release"):
            continue
        result = deployment.run(f"PORT={free_port()} {command}", timeout=60)
        assert result.returncode != 0, name
        assert "LOG_FORMAT='yaml'" in result.stderr, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (name, result.stderr[-2000:])


def _connector(*argv: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *argv], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def test_commands_print_no_alembic_lines_and_migrate_shows_only_its_upgrades(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "LOG_", "DATABASE_", "REDIS_"))}
    env.update(CONNECTOR_EMBEDDED="1", CONNECTOR_DATA_DIR=str(tmp_path / "data"), LOG_FORMAT="text",
               PYTHONPATH=str(REPO))
    keygen = _connector("keygen", env=env, cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    assert keygen.stdout.startswith("k1:") and keygen.stdout.count("\n") == 1, keygen.stdout
    assert "alembic" not in keygen.stderr, keygen.stderr

    migrate = _connector("migrate", env=env, cwd=tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    assert "setup plugin" not in migrate.stderr, migrate.stderr
    assert "Running upgrade" in migrate.stderr, migrate.stderr  # what an operator wants to see from migrate

    again = _connector("connections", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "alembic" not in again.stderr, again.stderr


@pytest.mark.parametrize("spelling", ["credit-note", "creditnote", "credit-notes", "CreditNote"])
def test_audit_takes_the_record_type_as_failures_and_replay_do(spelling):
    args = build_parser().parse_args(["audit", "1", spelling, "cn-1"])
    assert args.type == "creditnote"  # the record type the audit trail stores


def test_audit_refuses_an_unknown_record_type_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["audit", "1", "quote", "q-1"])
    assert exit_.value.code == 2
    assert "credit-note" in capsys.readouterr().err


@pytest.mark.parametrize("trail", ["won_deal", "invoice_deal", "payment_note"])
def test_audit_shows_the_trails_kept_under_zoho_ids(trail):
    assert build_parser().parse_args(["audit", "1", trail, "4876876000000400001"]).type == trail
