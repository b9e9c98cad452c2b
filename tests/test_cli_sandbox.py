"""`connector sandbox`: both simulators on the ports asked for, usable by any HTTP client."""

import re
import subprocess
import sys

import requests

from tests.processes import free_port


def test_sandbox_command_serves_both_apis_to_a_plain_http_client():
    xero_port, zoho_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "sandbox", "--xero-port", str(xero_port), "--zoho-port", str(zoho_port),
         "--seed", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{xero_port}" in out and f"http://127.0.0.1:{zoho_port}" in out, out
        tenant_id = re.search(r"tenant '.*' id=(\S+)", out).group(1)
        xero_refresh, zoho_refresh = re.findall(r"refresh_token=(\S+)", out)

        xero_url = f"http://127.0.0.1:{xero_port}"
        token = requests.post(f"{xero_url}/connect/token", auth=("sandbox-xero-client", "sandbox-xero-secret"),
                              data={"grant_type": "refresh_token", "refresh_token": xero_refresh}, timeout=5).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}
        connections = requests.get(f"{xero_url}/connections", headers=headers, timeout=5).json()
        assert [c["tenantId"] for c in connections] == [tenant_id]
        contacts = requests.get(f"{xero_url}/api.xro/2.0/Contacts", timeout=5,
                                headers={**headers, "xero-tenant-id": tenant_id}).json()["Contacts"]
        assert len(contacts) == 2

        zoho_url = f"http://127.0.0.1:{zoho_port}"
        zoho_token = requests.post(f"{zoho_url}/oauth/v2/token", timeout=5, data={
            "grant_type": "refresh_token", "refresh_token": zoho_refresh,
            "client_id": "sandbox-zoho-client", "client_secret": "sandbox-zoho-secret"}).json()
        assert zoho_token["api_domain"] == zoho_url
        modules = requests.get(f"{zoho_token['api_domain']}/crm/v8/settings/modules", timeout=5,
                               headers={"Authorization": f"Zoho-oauthtoken {zoho_token['access_token']}"}).json()
        assert "Accounts" in {m["api_name"] for m in modules["modules"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sandbox_takes_faults_from_the_command_line_and_its_control_api_needs_the_token(tmp_path):
    xero_port, zoho_port = free_port(), free_port()
    info_file = tmp_path / "sandbox.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "sandbox", "--xero-port", str(xero_port), "--zoho-port", str(zoho_port),
         "--seed", "0", "--control-token", "rehearsal", "--info-file", str(info_file),
         "--fault", "zoho:status:status=503,count=1,path=/oauth/v2/token"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out = _read_until_ready(proc)
        zoho_refresh = re.findall(r"refresh_token=(\S+)", out)[1]
        zoho_url = f"http://127.0.0.1:{zoho_port}"
        form = {"grant_type": "refresh_token", "refresh_token": zoho_refresh,
                "client_id": "sandbox-zoho-client", "client_secret": "sandbox-zoho-secret"}
        # The injected fault answers the first token call, and only that one.
        assert requests.post(f"{zoho_url}/oauth/v2/token", data=form, timeout=5).status_code == 503
        assert requests.post(f"{zoho_url}/oauth/v2/token", data=form, timeout=5).status_code == 200

        assert requests.get(f"{zoho_url}/_sandbox/info", timeout=5).status_code == 401
        assert requests.get(f"{zoho_url}/_sandbox/info", headers={"Authorization": "Bearer wrong"},
                            timeout=5).status_code == 401
        # A running sandbox takes more faults from `connector sandbox-control`.
        control = subprocess.run(
            [sys.executable, "-m", "workers.cli", "sandbox-control", f"http://127.0.0.1:{xero_port}", "--token",
             "rehearsal", "--fault", "zoho:status:status=500,count=1,path=/oauth/v2/token", "--deliver-zoho"],
            capture_output=True, text=True, timeout=30)
        assert control.returncode == 0, control.stdout + control.stderr
        assert requests.post(f"{zoho_url}/oauth/v2/token", data=form, timeout=5).status_code == 500
        assert requests.post(f"{zoho_url}/oauth/v2/token", data=form, timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _read_until_ready(proc) -> str:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    return "".join(lines)


def test_a_malformed_fault_is_refused_with_what_to_write():
    bad = subprocess.run([sys.executable, "-m", "workers.cli", "sandbox", "--fault", "zoho:status:colour=red"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert "unknown key 'colour'" in bad.stderr
