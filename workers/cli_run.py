"""`connector run`: the receiver, a worker and beat in one command, for a single small organisation.

On Redis and PostgreSQL (``REDIS_URL``/``DATABASE_URL``) it runs the schema upgrade, then supervises the
same three processes a PaaS would run (gunicorn, a prefork ``celery worker``, ``celery beat``): if one dies
the others are stopped and the command fails; SIGTERM or Ctrl-C stops all three cleanly (warm shutdown:
running tasks finish, unacknowledged ones stay queued).

With ``CONNECTOR_EMBEDDED=1`` and no Redis, everything runs inside this one process on the embedded
default (in-process broker, fakeredis, SQLite): the broker only reaches workers in this process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("connector.run")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long the children get to finish running tasks before they are killed.
SHUTDOWN_GRACE_SECONDS = 30.0


def cmd_run(args: argparse.Namespace) -> int:
    from workers.deps import get_deps

    # main() has checked what the receiver and a worker need (workers.startup), or that
    # CONNECTOR_EMBEDDED=1 asked for the embedded stand-ins.
    from connector.settings import platform_port

    settings = get_deps().settings
    port = args.port or platform_port() or 8000
    get_deps().store  # the schema upgrade, before anything reads or writes
    if settings.embedded:
        return run_embedded(args.host, port, concurrency=args.concurrency)
    return run_processes(args.host, port, concurrency=args.concurrency,
                         schedule=str(settings.data_dir / "celerybeat-schedule"))


def child_commands(host: str, port: int, *, concurrency: int, schedule: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [python, "-m", "gunicorn", "--config", "python:webhooks.gunicorn_config", "--bind", f"{host}:{port}",
                "--workers", "1", "--threads", "4", "--timeout", "10", "webhooks.wsgi:app"],
        "worker": [python, "-m", "celery", "-A", "workers.app", "worker", "-Q", "xero,zoho,maintenance",
                   "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", "run@%h"],
        "beat": [python, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO", "--schedule", schedule],
    }


def run_processes(host: str, port: int, *, concurrency: int, schedule: str) -> int:
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    os.makedirs(os.path.dirname(schedule) or ".", exist_ok=True)
    children: dict[str, subprocess.Popen] = {}
    try:
        for name, argv in child_commands(host, port, concurrency=concurrency, schedule=schedule).items():
            # Their own process group: a Ctrl-C in the terminal reaches only us, and we stop them in order.
            children[name] = subprocess.Popen(argv, start_new_session=True)
        log.info("run.started", extra={"url": f"http://{host}:{port}", "pids": {n: c.pid for n, c in children.items()}})
        died = None
        while not stop.wait(0.5):
            died = next((name for name, child in children.items() if child.poll() is not None), None)
            if died:
                log.error("run.child_exited", extra={"child": died, "exit_code": children[died].returncode})
                break
    finally:
        stop_children(children)
    if died:
        print(f"connector run: the {died} process exited ({children[died].returncode}); stopped the others",
              file=sys.stderr)
        return 1
    log.info("run.stopped")
    return 0


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    """Stop the receiver first (no new work), then beat and the worker; kill what outlives the grace."""
    order = [name for name in ("web", "beat", "worker") if name in children]
    for name in order:
        if children[name].poll() is None:
            children[name].send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for name in order:
        try:
            children[name].wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("run.child_killed", extra={"child": name})
            os.killpg(children[name].pid, signal.SIGKILL)
            children[name].wait()


def run_embedded(host: str, port: int, *, concurrency: int) -> int:
    from celery.beat import EmbeddedService
    from werkzeug.serving import make_server

    from webhooks.wsgi import build_receiver
    from workers.app import app
    from workers.embedded import EmbeddedWorker

    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    receiver = make_server(host, port, build_receiver(), threaded=True)
    worker = EmbeddedWorker(concurrency=concurrency).start()
    beat = EmbeddedService(app, thread=True)
    beat.start()
    serving = threading.Thread(target=receiver.serve_forever, name="receiver", daemon=True)
    serving.start()
    log.info("run.started", extra={"url": f"http://{host}:{port}", "embedded": True})
    try:
        stop.wait()
    finally:
        receiver.shutdown()
        beat.stop()
        worker.stop()
    log.info("run.stopped")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the receiver, a worker and beat in one command (one small organisation)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the receiver listens on (default 127.0.0.1; 0.0.0.0 to take webhooks directly)")
    p.add_argument("--port", type=int, default=None, help="receiver port (default: $PORT, else 8000)")
    p.add_argument("--concurrency", type=int, default=2, help="worker processes (threads when embedded); default 2")
    p.set_defaults(func=cmd_run)
