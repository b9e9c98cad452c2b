"""Child processes the tests start and wait on: shared by the whole suite's fixtures (a redis-server per
xdist worker, tests/conftest.py) and the fault suite's deployment (tests/faults/harness.py)."""

from __future__ import annotations

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


class Process:
    """One child process in its own session (so its whole group can be killed), output kept in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        log = open(self.log_path, "a")
        log.write(f"\n==== start {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n")
        log.flush()
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.env}, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Ask the process to stop; kill its whole group if it has not after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()

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

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


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
