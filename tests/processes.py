"""Child processes the tests start and wait on: shared by the whole suite's fixtures (a redis-server per
xdist worker, tests/conftest.py), the fault suite's deployment (tests/faults/harness.py) and the deployment
tests' Procfile processes (tests/deploy/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """The Procfile's process types and their command lines, as written (blank lines and comments skipped)."""
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def printed_lines_until_url(process: subprocess.Popen) -> list[str]:
    """The lines `connector connect` prints up to the authorise URL (the last), read from its stdout."""
    lines: list[str] = []
    while not (lines and lines[-1].startswith("http")):
        line = process.stdout.readline()
        assert line, process.stderr.read()
        lines.append(line.strip())
    return lines


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception as exc:  # a service coming back up may refuse the first polls
            value, last_error = None, exc
        else:
            last_error = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def wait_for_http(url: str, *, timeout: float, process: "Process | None" = None):
    """The first HTTP answer from ``url`` (any status, a ``requests.Response``); fails with the process's
    output if none comes (or the process exits first)."""
    import requests

    answer: list[requests.Response] = []

    def answered() -> bool:
        if process is not None and not process.alive():
            return True
        answer.append(requests.get(url, timeout=2))
        return True

    try:
        wait_for(answered, timeout=timeout, interval=0.2, what=f"an answer from {url}")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n{process.tail() if process else ''}") from None
    assert answer, f"{process.name} exited before {url} answered:\n{process.tail()}"
    return answer[0]


class Process:
    """One child process in its own session (so its whole group can be killed), output kept in a file.

    It runs in ``cwd`` with ``env`` over this process's environment, or with ``env`` alone when
    ``inherit_env`` is false (a deployment's processes get exactly the environment it sets)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, *, cwd: Path = ROOT,
                 inherit_env: bool = True) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.inherit_env = inherit_env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        log = open(self.log_path, "a")
        log.write(f"\n==== start {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n")
        log.flush()
        env = {**os.environ, **self.env} if self.inherit_env else dict(self.env)
        self.proc = subprocess.Popen(self.argv, env=env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        return children_of(self.pid) if self.alive() else []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0, *, whole_group: bool = False) -> int | None:
        """Ask the process (or, with ``whole_group``, every process of its group, as a platform stopping a
        container does) to stop; kill its whole group after ``timeout``, or once it has stopped. Its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if whole_group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        return self.proc.returncode

    def kill_group(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def log_mark(self) -> int:
        """Where the log ends now; ``log_since(mark)`` is what the process printed after."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def output(self) -> str:
        """Everything the process printed (after a ``==== start`` line of each start)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def json_lines(self) -> list[dict]:
        """The lines of its output that are JSON objects (its log records, under LOG_FORMAT=json)."""
        lines = []
        for text in self.output().splitlines():
            text = text.strip()
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except ValueError:
                    pass
        return lines


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


class RedisServer:
    """A redis-server of our own on a free port, restartable on the same port. ``durable`` keeps its data in
    an append-only file (as a broker that keeps its queues must run); otherwise it keeps nothing on disk."""

    def __init__(self, workdir: Path, *, durable: bool = True) -> None:
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
        self.process = Process("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                                         "--dir", str(self.dir), "--save", "", *persistence], {}, workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        self.process.start()
        wait_for(lambda: self.client().ping(), timeout=20, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """SHUTDOWN as an operator's restart does (the append-only file keeps every queued message)."""
        if self.process.alive():
            try:
                self.client().shutdown(nosave=False)
            except Exception:  # redis-py reports the dropped connection of a successful SHUTDOWN
                pass
            wait_for(lambda: not self.process.alive(), timeout=20, what="redis-server to stop")
        self.process.kill_group()

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:
            return False
