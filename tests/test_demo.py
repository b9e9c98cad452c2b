"""`connector demo` itself: the embedded default end to end, as a new user runs it."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class DemoRun:
    result: subprocess.CompletedProcess
    data_dir: Path


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory) -> DemoRun:
    """One `connector demo` as a new user runs it (the default 25 contacts), for the tests below that each
    assert a different thing about that same run: a demo takes tens of seconds."""
    data_dir = tmp_path_factory.mktemp("default-demo") / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    return DemoRun(result, data_dir)


def test_demo_syncs_every_contact_and_exits_zero(default_demo):
    result = default_demo.result
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "25/25 Xero contacts synced to Zoho" in out
    assert "duplicate delivery wrote 0 more" in out
    assert "Müller" in out  # non-ASCII names survive the round trip
    # The payer's Account shows the payment: what it owes drops and its last payment appears.
    money = out.split("before -> after the payment:\n", 1)[1].split("\ntwo-way:", 1)[0].splitlines()
    assert money[0].split() == ["Account", "status", "outstanding", "overdue", "invoiced", "last", "payment"]
    payer = money[2]
    assert " -> " in payer and "- -> " in payer, money  # outstanding changed; no payment before, one after
    assert "linked by its Xero Reference 'Deal " in out  # an invoice on the deal its Reference names
    assert "after payment:  invoiced 1000.0, paid 500.0, outstanding 500.0" in out
    assert "1 payment note(s): Xero payment 500.00 NZD" in out
    # A won deal notified twice: one draft invoice in Xero.
    assert re.search(r"won deal .Harbour store fit-out. \(Closed Won, notified 2 times\): 1 DRAFT invoice INV-", out)
    assert "(notified 2 times) -> 1 Xero contact 'Kauri Coffee Roasters'" in out  # a new Zoho Account, once
    assert "Xero creates: 1; echo writes back to Zoho: 0" in out
    assert (default_demo.data_dir / "connector.db").exists()


# The demo with a Zoho sandbox that refuses one invoice as invalid data, as Zoho would refuse a record.
_REFUSING_DEMO = """
import sys
from pathlib import Path

from connector.sandbox import zoho
from workers import demo


class RefusingZoho(zoho.ZohoSandbox):
    def _validate(self, module, item, path, *, existing):
        if module == "Invoices" and item.get("Subject") == "INV-0003":
            raise zoho._Rejected(zoho._item_error("INVALID_DATA", "invalid data", "Subject", path + ".Subject"))
        return super()._validate(module, item, path, existing=existing)


demo.ZohoSandbox = RefusingZoho
sys.exit(demo.run_demo(contacts=6, data_dir=Path(sys.argv[1]), timeout=5.0))
"""


def test_a_failed_demo_names_the_check_and_the_records_on_its_failed_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL")}
    result = subprocess.run([sys.executable, "-c", _REFUSING_DEMO, str(tmp_path / "demo")],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("FAILED: "), last
    checks = dict(check.split(": ", 1) for check in last.removeprefix("FAILED: ").split("; "))
    # Delivered again, the refused invoice is sent again: the one write the duplicate delivery made.
    assert checks["duplicate delivery"] == "wrote 1 more (1 Invoices upsert) for INV-0003 (failed)", last
    assert checks["invoices not written or skipped"] == "INV-0003 (failed)", last
    assert checks["invoices missing or off in Zoho (lines, total, paid, due)"] == "INV-0003", last


def test_demo_output_is_its_report_alone_and_its_log_lines_go_to_a_file(default_demo):
    result, data_dir = default_demo.result, default_demo.data_dir
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]
    assert not [line for line in result.stdout.splitlines() if line.lstrip().startswith("{")], result.stdout
    log = (data_dir / "demo.log").read_text()
    assert "webhook.xero.bad_signature" in log  # the intent-to-receive check's deliberate bad signature
    assert "No hostname was supplied" not in log  # the in-process broker is named, so kombu has nothing to say
    assert str(data_dir / "demo.log") in result.stdout  # the report says where the log lines went
