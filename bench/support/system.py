"""Processes the benchmarks start: the sandboxes, the receiver and workers exactly as the Procfile
runs them, and the bits they share (a throwaway PostgreSQL database, RSS sampling)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", os.environ.get("TEST_PG_ADMIN_URL",
                                                                    "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", os.environ.get("TEST_REDIS_HOST", "127.0.0.1"))
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", os.environ.get("TEST_REDIS_PORT", "6379")))
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
# Celery's trace logger, for a task that failed with an exception it did not expect (celery/app/trace.py).
TASK_RAISED = "raised unexpected:"


def redis_url() -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, *, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_progress(step: Callable[[], tuple[bool, int]], *, worker: "Service", timeout: float,
                      stall_after: float, what: str, interval: float = 1.0) -> None:
    """Wait until ``step()`` says done (it returns done and how much is done so far).

    Fails at once when the worker exits or logs a task that raised, and when nothing has moved for
    ``stall_after`` seconds, with the worker's lines that say why: a broken run then costs minutes, not the
    whole timeout.
    """
    deadline = time.monotonic() + timeout
    moved_at, last = time.monotonic(), None
    while True:
        done, amount = step()
        if done:
            return
        raised = [line for line in worker.new_output().splitlines() if TASK_RAISED in line]
        if raised or not worker.alive():
            state = "a task raised" if raised else "the worker exited"
            raise RuntimeError(f"{state} while waiting for {what} ({amount} so far; log {worker.log_path}):\n"
                               + "\n".join(raised[:5] or [worker.output()[-3000:]]))
        now = time.monotonic()
        if amount != last:
            moved_at, last = now, amount
        if now - moved_at > stall_after or now > deadline:
            waited = f"nothing moved for {stall_after:.0f} s" if now <= deadline else f"timed out after {timeout:.0f} s"
            raise TimeoutError(f"{waited} waiting for {what} ({amount} so far; log {worker.log_path})")
        time.sleep(interval)


def procfile_command(process: str, *, port: int | None = None) -> list[str]:
    """The Procfile's command line for ``process`` (web, worker, ...), bound to loopback."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            command = command.strip().replace("${PORT:-8000}", str(port or 8000)).replace("0.0.0.0", "127.0.0.1")
            argv = shlex.split(command)
            executable = BIN / argv[0]
            return [str(executable) if executable.exists() else argv[0], *argv[1:]]
    raise KeyError(f"no {process!r} process in the Procfile")


class Sandboxes:
    """bench/support/sandboxes.py in its own process; ``facts`` is what it wrote when ready."""

    def __init__(self, tenants: list[str], *, lines: int, workdir: Path, orgs: Iterable[str] = ()) -> None:
        out = workdir / f"sandboxes-{uuid.uuid4().hex[:8]}.json"
        self.log = open(workdir / "sandboxes.log", "w")
        args = [sys.executable, str(ROOT / "bench/support/sandboxes.py"), "--out", str(out), "--lines", str(lines)]
        for tenant in tenants:
            args += ["--tenant", tenant]
        for org in orgs:
            args += ["--org", org]
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        try:  # a failure or a termination while seeding still stops the process
            wait_for(lambda: out.exists() or self.process.poll() is not None, timeout=600, interval=0.2,
                     what="the sandboxes to seed")
            if self.process.poll() is not None:
                raise RuntimeError(f"the sandboxes exited; see {self.log.name}")
            self.facts = json.loads(out.read_text())
            out.unlink()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_each(names: list[str], sandboxes: "Sandboxes", run_one) -> dict[str, dict]:
    """``run_one(name)`` for each run in turn, printing each run's figures as it ends; the sandboxes are
    stopped afterwards, whatever happened."""
    results = {}
    try:
        for name in names:
            results[name] = run_one(name)
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    finally:
        sandboxes.stop()
    return results


class Service:
    """One Procfile process (web or worker) with its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.read_up_to = 0
        self.process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_output(self) -> str:
        """What the process wrote since the last call (a long run's log is not read again each time)."""
        with open(self.log_path, "rb") as log:
            log.seek(self.read_up_to)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read whole next time
        self.read_up_to += complete
        return chunk[:complete].decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the process group this Service started
                self.process.wait()
        self.log.close()


def start_receiver(env: dict[str, str], workdir: Path, *, app: str | None = None,
                   name: str = "web") -> tuple[Service, str]:
    """gunicorn as the Procfile runs it (``app`` replaces the WSGI app, same settings)."""
    port = free_port()
    argv = procfile_command("web", port=port)
    if app is not None:
        argv[-1] = app
    service = Service(argv, env, workdir / f"{name}.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not service.alive():
            raise RuntimeError(f"gunicorn exited:\n{service.output()[-3000:]}")
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=60, interval=0.2, what="gunicorn to answer /healthz")
    except BaseException:
        service.stop()
        raise
    return service, url


def start_worker(env: dict[str, str], workdir: Path, *, app: str = "workers.app", name: str = "worker") -> Service:
    argv = procfile_command("worker")
    argv[argv.index("-A") + 1] = app
    argv += ["-n", f"bench-{name}-{uuid.uuid4().hex[:6]}@%h"]
    service = Service(argv, env, workdir / f"{name}.log")

    def ready() -> bool:
        if not service.alive():
            raise RuntimeError(f"the worker exited:\n{service.output()[-3000:]}")
        return " ready." in service.output()

    try:
        wait_for(ready, timeout=90, interval=0.2, what="the celery worker to be ready")
    except BaseException:
        service.stop()
        raise
    return service


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Peak RSS of any one process of a worker (its main process and prefork children)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self.samples: list[tuple[float, float]] = []  # (monotonic time, largest process RSS then)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            largest = max([rss_mb(p) for p in [self.pid, *_children(self.pid)]] or [0.0])
            self.samples.append((time.monotonic(), largest))
            self.peak_mb = max(self.peak_mb, largest)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used while running, per group: the process trees of ``roots`` (name -> pid) and, as
    "database", the PostgreSQL backends serving ``database_url`` (this meter's own left out). Sampled
    often, so processes that exit in between still count up to their last sample. Unlike a rate, CPU
    per record hardly moves with what else the machine is running."""

    def __init__(self, roots: dict[str, int], database_url: str, interval: float = 0.3) -> None:
        import psycopg

        self.roots, self.interval = roots, interval
        # Through the admin database: the measured database's transaction count must not include ours.
        self.conn = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
        self.name = database_url.rsplit("/", 1)[1]
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pids = [(name, pid) for name, root in self.roots.items() for pid in [root, *_children(root)]]
        backends = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                                     "backend_type = 'client backend' AND pid <> pg_backend_pid()", (self.name,))
        pids += [("database", pid) for (pid,) in backends.fetchall()]
        for key in pids:
            used = cpu_seconds(key[1])
            if used is not None:
                self._first.setdefault(key, used)
                self._last[key] = used

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "CpuMeter":
        self._sample()  # what each process had used before the measured part: not counted
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self.conn.close()

    def seconds(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for key, last in self._last.items():
            used[key[0]] = used.get(key[0], 0.0) + last - self._first[key]
        return used


@contextmanager
def throwaway_database(prefix: str = "mlc_bench") -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
