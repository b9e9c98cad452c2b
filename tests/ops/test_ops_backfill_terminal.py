"""`connector backfill` in a terminal: a real process on a pseudo-terminal (pty) that reports no size
(0 columns, 0 rows), as `script`, `docker exec -t` or an ssh session without a size give. Its bar
renders, its log lines go above the bar, it waits for its budget, and Ctrl-C stops it resumably."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading

from connector.sandbox.xero_seed import seed_demo_org
from tests.processes import ROOT
from workers.embedded import wait_until


class Terminal:
    """The far side of a pseudo-terminal: everything the process wrote to it, read as it comes."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.slave)  # the process holds its own copy: reading ends (EIO) once it exits
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def close(self) -> None:
        self._reader.join(timeout=30)
        os.close(self.master)

    def lines(self) -> list[bytes]:
        """What each line shows at the end: each carriage return goes back to its start, and what follows
        overwrites it."""
        shown = []
        for line in bytes(self.output).replace(b"\r\n", b"\n").split(b"\n"):
            screen = bytearray()
            for piece in line.split(b"\r"):
                screen[:len(piece)] = piece
            shown.append(bytes(screen).rstrip())
        return shown


def cli_env(settings) -> dict[str, str]:
    """The embedded mode on the test's data dir (its SQLite file and key ring) and sandboxes."""
    return {
        "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "LOG_LEVEL": "INFO",
        "CONNECTOR_EMBEDDED": "1", "CONNECTOR_DATA_DIR": str(settings.data_dir),
        "XERO_CLIENT_ID": settings.xero_client_id, "XERO_CLIENT_SECRET": settings.xero_client_secret.reveal(),
        "XERO_WEBHOOK_KEY": settings.xero_webhook_key.reveal(), "XERO_API_URL": settings.xero_api_url,
        "XERO_IDENTITY_URL": settings.xero_identity_url, "XERO_LOGIN_URL": settings.xero_login_url,
        "ZOHO_CLIENT_ID": settings.zoho_client_id, "ZOHO_CLIENT_SECRET": settings.zoho_client_secret.reveal(),
        "ZOHO_ACCOUNTS_URL": settings.zoho_accounts_url,
    }


def test_backfill_in_a_terminal_shows_its_bar_waits_for_its_budget_and_stops_on_ctrl_c(embedded):
    deps, cid = embedded.deps, embedded.connection_id
    contacts = seed_demo_org(embedded.xero, embedded.tenant_id, contacts=2500)  # three pages
    terminal = Terminal()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "backfill", str(cid), "--resources", "contacts", "--budget", "2"],
        stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, env=cli_env(deps.settings))
    terminal.start()
    try:
        assert wait_until(lambda: b"waiting until" in terminal.output or process.poll() is not None, timeout=180)
        assert b"waiting until" in terminal.output, bytes(terminal.output)[-3000:]
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        terminal.close()

    # Two pages of 1,000: 2,000 records, fewer when the seeding spanned a second boundary (the second page then
    # starts again at the first page's newest second, relisting what it held). The count is the distinct records.
    checkpoint = deps.store.backfills.get(cid, "contacts")
    listed = checkpoint.records
    assert listed == len(deps.store.snapshots.get_many(cid, "contacts", contacts)) and 1000 < listed <= 2000
    lines = terminal.lines()
    bar = re.compile(rb"backfill #%d: +\d+%%\|" % cid)
    bars = [line for line in lines if bar.search(line)]
    # The bar rendered, with the records listed and the ETA within 80 columns.
    assert any(re.search(rb" %d/2500, ETA \d{4}-" % listed, line[:80]) for line in bars), (lines[-20:], bytes(terminal.output)[-2000:])
    # Every line showing the bar shows only the bar: log lines and messages were written above it.
    assert all(bar.match(line) and b"sync." not in line for line in bars), bars
    assert any(b"sync.written" in line for line in lines)  # the log lines are there, above the bar
    text = bytes(terminal.output).decode()
    assert "its budget of 2 Xero calls per 24 h is spent; waiting until" in text
    assert f"backfill #{cid} stopped after {listed} records (2 calls); run the same command again" in text
    assert checkpoint.state == "waiting" and checkpoint.pages == 2
