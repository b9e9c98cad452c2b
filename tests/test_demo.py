"""`connector demo` itself: the embedded default end to end, as a new user runs it."""

import os
import subprocess
import sys


def test_demo_syncs_every_contact_and_exits_zero(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--data-dir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "25/25 Xero contacts synced to Zoho" in out
    assert "duplicate delivery wrote 0 more" in out
    assert "Müller" in out  # non-ASCII names survive the round trip
    assert (tmp_path / "demo" / "connector.db").exists()
