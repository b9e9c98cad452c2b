"""Where `connector demo` keeps its files: the folder `demo` in CONNECTOR_DATA_DIR (default var), and it
empties only a folder that is a demo's: never someone's data dir, never one another demo is running in."""

import os
import subprocess
import sys
from pathlib import Path

from workers.demo import DEMO_MARK, claim_demo_dir


def demo_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CONNECTOR_DATA_DIR")}
    return {**env, **extra}


def run_demo_cli(cwd: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workers.cli", "demo", "--contacts", "3", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_demos_in_one_folder_each_follow_their_connector_data_dir_and_leave_its_own_files_alone(tmp_path):
    """The second data dir is a real one, as after `cp .env.example .env` (CONNECTOR_DATA_DIR=var, read by every
    command): the data dir's own files are never in the folder the demo empties. One pair of runs proves both,
    as a demo takes tens of seconds."""
    real = tmp_path / "two"
    real.mkdir()
    (real / "mapping.yaml").write_text("contacts: {}\n")
    (real / "celerybeat-schedule").write_text("beat's file")
    first = run_demo_cli(tmp_path, demo_env(CONNECTOR_DATA_DIR=str(tmp_path / "one")))
    second = run_demo_cli(tmp_path, demo_env(CONNECTOR_DATA_DIR=str(real)))
    for demo in (first, second):
        out, err = demo.communicate(timeout=240)
        assert demo.returncode == 0, out[-3000:] + err[-3000:]
        assert "3/3 Xero contacts synced to Zoho" in out
    assert (tmp_path / "one" / "demo" / "connector.db").exists() and (real / "demo" / "connector.db").exists()
    assert not (tmp_path / "var").exists(), "the demo used var/demo although CONNECTOR_DATA_DIR was set"
    assert sorted(p.name for p in real.iterdir()) == ["celerybeat-schedule", "demo", "mapping.yaml"]
    assert (real / "mapping.yaml").read_text() == "contacts: {}\n"
    assert (real / "celerybeat-schedule").read_text() == "beat's file"


def test_the_demo_refuses_a_folder_holding_someone_elses_files_and_leaves_them(tmp_path):
    data_dir = tmp_path / "production"
    data_dir.mkdir()
    (data_dir / "connector.db").write_text("someone's database")
    (data_dir / "mapping.yaml").write_text("contacts: {}\n")
    demo = run_demo_cli(tmp_path, demo_env(), "--data-dir", str(data_dir))
    out, err = demo.communicate(timeout=240)
    assert demo.returncode == 2, out[-3000:] + err[-3000:]
    assert err.strip().splitlines() == [
        f"demo: {data_dir} holds files that are not a demo's, and the demo empties its folder: give it a "
        "folder of its own (--data-dir, or CONNECTOR_DATA_DIR), or remove it if an older version's demo left it"], err
    assert sorted(p.name for p in data_dir.iterdir()) == ["connector.db", "mapping.yaml"]
    assert (data_dir / "connector.db").read_text() == "someone's database"


def test_the_demo_refuses_a_folder_another_demo_is_running_in(tmp_path):
    data_dir = tmp_path / "demo"
    held = claim_demo_dir(data_dir)  # as a running demo holds it
    try:
        (data_dir / "connector.db").write_text("the running demo's database")
        demo = run_demo_cli(tmp_path, demo_env(), "--data-dir", str(data_dir))
        out, err = demo.communicate(timeout=240)
        assert demo.returncode == 2, out[-3000:] + err[-3000:]
        assert err.strip().splitlines() == [
            f"demo: another demo is running in {data_dir}: wait for it to end, or give it a folder of its own "
            "(--data-dir, or CONNECTOR_DATA_DIR)"], err
        assert (data_dir / "connector.db").read_text() == "the running demo's database"
    finally:
        held.close()


def test_a_demos_own_folder_is_emptied_for_the_next_run(tmp_path):
    data_dir = tmp_path / "demo"
    claim_demo_dir(data_dir).close()
    (data_dir / "connector.db").write_text("the last run's database")
    (data_dir / "logs").mkdir()
    (data_dir / "logs" / "demo.log").write_text("the last run's log")
    held = claim_demo_dir(data_dir)
    try:
        assert [p.name for p in data_dir.iterdir()] == [DEMO_MARK]
    finally:
        held.close()
