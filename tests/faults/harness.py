"""The processes of a production deployment, started as production starts them, for tests that break them.

- its own ``redis-server`` (with an append-only file, as a broker that keeps its queues must run), on a
  free port, so a test can stop and restart it without touching anybody else's Redis;
- ``connector sandbox`` in its own process, driven through its ``/_sandbox/`` control API;
- ``connector migrate``, then the receiver under gunicorn and prefork ``celery worker``/``beat``, each
  from its line in the Procfile (only the port, the concurrency and beat's schedule file differ);
- a PostgreSQL database that can be made unreachable without stopping the shared server (tests/conftest.py
  PostgresOutage).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.processes import ROOT, Process, RedisServer, procfile, wait_for
from tests.system import ReceivesWebhooks

BIN = Path(sys.executable).parent


def procfile_command(process: str) -> list[str]:
    """The command of one Procfile process type, split as a shell would, with the venv's executables."""
    commands = procfile()
    assert process in commands, f"the Procfile has no {process!r} process"
    argv = shlex.split(commands[process])
    if (BIN / argv[0]).exists():
        argv[0] = str(BIN / argv[0])
    return argv


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with the value after ``option`` replaced (appended when the option is absent)."""
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


def process_connected_to(pids: list[int], port: int) -> int | None:
    """Which of ``pids`` holds an open TCP connection to 127.0.0.1:``port`` (e.g. a call to a sandbox)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == port and cols[3] == "01":  # ESTABLISHED
                inodes.add(cols[9])
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inodes for link in links):
            return pid
    return None


class SandboxControl:
    """Client of the ``/_sandbox/`` control API of a ``connector sandbox`` process."""

    def __init__(self, xero_url: str, zoho_url: str, token: str) -> None:
        self.xero_url, self.zoho_url = xero_url, zoho_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, *, json_body: dict | None = None, params: dict | None = None,
             timeout: float = 120.0):
        answer = self.session.request(method, f"{self.xero_url}/_sandbox/{path}", json=json_body, params=params,
                                      timeout=timeout)
        assert answer.status_code == 200, f"sandbox control {method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def fault(self, system: str, kind: str = "status", **spec) -> int:
        return self.call("POST", "faults", json_body={"system": system, "kind": kind, **spec})["queued"]

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def requests(self, system: str, since: int = 0) -> list[dict]:
        return self.call("GET", "requests", params={"system": system, "since": since})["requests"]

    def in_flight(self, system: str, *, path_prefix: str = "", method: str | None = None) -> list[dict]:
        return [r for r in self.requests(system) if r["finished"] is None and r["path"].startswith(path_prefix)
                and method in (None, r["method"])]

    def xero_state(self, tenant_id: str) -> dict:
        return self.call("GET", "xero/state", params={"tenant_id": tenant_id})

    def zoho_records(self, *modules: str) -> dict[str, list[dict]]:
        return self.call("GET", "zoho/state", params={"modules": ",".join(modules)})["records"]

    def pending_webhooks(self) -> int:
        return len(self.call("GET", "xero/pending")["events"])

    def deliver(self, url: str, **options) -> list[int]:
        return self.call("POST", "xero/deliver", json_body={"url": url, **options})["statuses"]


@dataclass
class Stack(ReceivesWebhooks):
    """A running deployment: its processes, its environment, and how to reach each part."""

    workdir: Path
    redis: RedisServer
    database_url: str
    database_name: str
    sandbox: Process
    control: SandboxControl
    env: dict[str, str]
    receiver_port: int
    receiver: Process | None = None
    worker: Process | None = None
    beat: Process | None = None
    worker_starts: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    # -- processes as the Procfile starts them ----------------------------------------------------

    def run(self, *argv: str, timeout: float = 120.0, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "connector"), *argv], env={**os.environ, **self.env}, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, input=stdin)

    def connect(self, system: str, *options: str) -> str:
        """``connector connect <system> <options> --paste`` as a person runs it: open the URL it prints,
        consent, paste the redirect back; its output (the command must succeed)."""
        connect = subprocess.Popen(
            [str(BIN / "connector"), "connect", system, *options, "--paste",
             "--redirect-uri", f"http://127.0.0.1:1/oauth/{system}/callback"],
            env=self.env_for_cli(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        url = ""
        for line in connect.stdout:
            if line.startswith("http"):
                url = line.strip()
                break
        assert url, connect.stdout.read()
        consent = requests.get(url, allow_redirects=False, timeout=10)
        assert consent.status_code == 302, consent.text
        output, _ = connect.communicate(consent.headers["Location"] + "\n", timeout=60)
        assert connect.returncode == 0, output
        return output

    def env_for_cli(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def run_python(self, code: str) -> str:
        """Run ``code`` in a fresh interpreter with the deployment's environment; its stdout."""
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **self.env}, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start_receiver(self, wait: bool = True) -> None:
        argv = procfile_command("web")
        argv = [a.replace("0.0.0.0:${PORT:-8000}", f"127.0.0.1:{self.receiver_port}") for a in argv]
        self.receiver = Process("web", argv, self.env, self.workdir).start()
        if wait:
            self.wait_for_receiver()

    def wait_for_receiver(self) -> None:
        wait_for(lambda: requests.get(f"{self.receiver_url}/healthz", timeout=2).status_code < 500
                 or not self.receiver.alive(), timeout=60, what="gunicorn to answer /healthz")
        assert self.receiver.alive(), f"gunicorn did not start:\n{self.receiver.tail()}"

    def start_worker(self, wait: bool = True) -> None:
        self.worker_starts += 1
        argv = replace_option(procfile_command("worker"), "--concurrency", "2")
        # Each start is a new node name, as a replaced container's would be (its hostname changes).
        argv += ["--hostname", f"faults{self.worker_starts}@%h"]
        self.worker = Process("worker", argv, self.env, self.workdir).start()
        if wait:
            self.wait_for_worker()

    def wait_for_worker(self) -> None:
        wait_for(lambda: "ready." in self.worker.tail(20000).rsplit("==== start", 1)[-1] or not self.worker.alive(),
                 timeout=60, what="the celery worker to be ready")
        assert self.worker.alive(), f"the worker did not start:\n{self.worker.tail()}"
        wait_for(lambda: len(self.worker.children()) >= 2, timeout=30, what="the worker's pool processes")

    def start_beat(self) -> None:
        argv = procfile_command("beat") + ["--schedule", str(self.workdir / "celerybeat-schedule")]
        self.beat = Process("beat", argv, self.env, self.workdir).start()

    def ensure_running(self) -> None:
        """Bring back whatever a previous test left stopped or dead."""
        if self.extra.get("pg_outage"):
            self.extra.pop("pg_outage").end()
        if not self.redis.up():
            self.redis.process.kill_group()
            self.redis.start()
        if self.receiver is None or not self.receiver.alive():
            if self.receiver is not None:
                self.receiver.kill_group()
            self.start_receiver()
        if self.worker is None or not self.worker.alive():
            if self.worker is not None:
                self.worker.kill_group()
            self.start_worker()
        if self.beat is not None and not self.beat.alive():
            self.beat.kill_group()
            self.start_beat()

    def stop_all(self) -> None:
        # The tests are over: no need to wait for a warm shutdown to finish in-flight work.
        for process in (self.beat, self.worker, self.receiver):
            if process is not None:
                process.stop(timeout=3)
        self.sandbox.stop(signal.SIGINT, timeout=10)
        self.redis.stop()

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"---- {p.name} ----\n{p.tail(chars)}" for p in (self.worker, self.receiver, self.beat)
                         if p is not None)


def start_sandbox(workdir: Path) -> tuple[Process, SandboxControl]:
    info_file = workdir / "sandbox.json"
    process = Process("sandbox", [str(BIN / "connector"), "sandbox", "--xero-port", "0", "--zoho-port", "0",
                                  "--tenant-name", "", "--seed", "0", "--info-file", str(info_file)],
                      {}, workdir).start()
    wait_for(lambda: info_file.exists() or not process.alive(), timeout=60, what="connector sandbox to serve")
    assert process.alive(), process.tail()
    info = json.loads(info_file.read_text())
    return process, SandboxControl(info["xero_url"], info["zoho_url"], info["control_token"])
