"""The webhook receiver under load: the real one under gunicorn (as the Procfile runs it) against a
bare Flask app under the same gunicorn settings that only checks the HMAC and enqueues one task.

A separate process (bench/support/load.py) sends signed Xero bodies of 1-50 events and Zoho
notifications over keep-alive connections, first at a fixed rate (p50/p99 at that rate), then as
fast as they are answered (the maximum sustained rate). Every event of every 2xx answer must be in
the broker afterwards: the queued task messages are opened and their events counted.

    .venv/bin/python bench/receiver.py [--rate 500] [--seconds 20] [--connections 16]

Environment: TEST_REDIS_PORT (or BENCH_REDIS_PORT) picks the Redis server (database 9 is flushed);
BENCH_PG_ADMIN_URL the PostgreSQL server. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.system import flush_redis, redis_url, start_receiver, throwaway_database  # noqa: E402
from connector.store.vault import Vault  # noqa: E402

WEBHOOK_KEY = "bench-receiver-webhook-key"
QUEUES = ("xero", "zoho")


def receiver_env(database_url: str, data_dir: Path, zoho_token: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url(), "CELERY_BROKER_URL": redis_url(),
        "CONNECTOR_DATA_DIR": str(data_dir), "CONNECTOR_VAULT_KEYS": Vault.generate_keyring("bench"),
        "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:8000", "XERO_WEBHOOK_KEY": WEBHOOK_KEY,
        "XERO_CLIENT_ID": "bench", "XERO_CLIENT_SECRET": "bench", "ZOHO_CLIENT_ID": "bench",
        "ZOHO_CLIENT_SECRET": "bench", "BENCH_ZOHO_TOKEN": zoho_token,
    }


def prepare_database(env: dict[str, str], tenant_id: str, channel_id: str, token: str) -> None:
    """A connection for the tenant and a live Zoho channel, as `connector connect` leaves them."""
    from connector.clock import SYSTEM_CLOCK
    from connector.settings import Settings
    from workers.deps import configure

    deps = configure(Settings.from_env(env))
    connection = deps.store.connections.create(name="Receiver Bench Ltd", xero_tenant_id=tenant_id)
    deps.store.channels.save(connection.id, channel_id, token=token, events=["Accounts.all"],
                             expires_at=SYSTEM_CLOCK.now() + timedelta(days=6))
    deps.store.close()


def events_enqueued() -> int:
    """Events in the task messages waiting in the broker (no worker runs during this benchmark)."""
    import redis

    client = redis.Redis.from_url(redis_url())
    total = 0
    for key in client.scan_iter():
        name = key.decode()
        if not name.startswith(QUEUES) or client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            message = json.loads(raw)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            if name.startswith("zoho"):
                total += 1
            elif isinstance(args[0], str):  # the bare app queues the raw body
                total += len(json.loads(args[0])["events"])
            else:
                total += len(args[0])
    return total


def load(url: str, mode: str, args, tenant_id: str, channel_id: str, token: str, workdir: Path) -> dict:
    out = workdir / f"load-{uuid.uuid4().hex[:6]}.json"
    subprocess.run([sys.executable, str(Path(__file__).with_name("support") / "load.py"), "--url", url,
                    "--mode", mode, "--rate", str(args.rate), "--seconds", str(args.seconds),
                    "--connections", str(args.connections), "--key", WEBHOOK_KEY, "--tenant", tenant_id,
                    "--channel", channel_id, "--token", token, "--out", str(out)], check=True)
    return json.loads(out.read_text())


def measure(app: str | None, name: str, env: dict, args, tenant_id: str, channel_id: str, token: str,
            workdir: Path) -> dict:
    figures = {}
    flush_redis()
    service, url = start_receiver(env, workdir, app=app, name=name)
    profiler = None
    try:
        time.sleep(1.0)
        if args.profile:
            profiler = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "-r", "100", "-f",
                 "speedscope", "-o", f"{args.profile.removesuffix('.json')}-{name}.json", "-p",
                 str(service.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        at_rate = load(url, "rate", args, tenant_id, channel_id, token, workdir)
        at_rate["events_enqueued"] = events_enqueued()
        flush_redis()
        flat_out = load(url, "max", args, tenant_id, channel_id, token, workdir)
        flat_out["events_enqueued"] = events_enqueued()
        flush_redis()
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        service.stop()
    figures.update({k: at_rate[k] for k in ("requests", "rps", "p50_ms", "p99_ms", "non_2xx", "events_sent",
                                             "events_enqueued")})
    figures["max_sustained"] = {k: flat_out[k] for k in ("requests", "rps", "p50_ms", "p99_ms", "non_2xx",
                                                          "events_sent", "events_enqueued")}
    return figures


def main(argv: list[str] | None = None) -> int:
    # A terminated benchmark still stops the processes it started (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RECEIVER_RATE", 500)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_RECEIVER_SECONDS", 20)))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", default=None, metavar="PREFIX",
                        help="record each gunicorn with py-spy into PREFIX-<app>.json (speedscope)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="mlc-bench-receiver-"))
    tenant_id, channel_id, token = str(uuid.uuid4()), "1000000123456", uuid.uuid4().hex
    with throwaway_database() as database_url:
        env = receiver_env(database_url, workdir, token)
        prepare_database(env, tenant_id, channel_id, token)
        receiver = measure(None, "receiver", env, args, tenant_id, channel_id, token, workdir)
        print(f"receiver: {json.dumps(receiver)}", flush=True)
        bare = measure("bench.support.bare_receiver:app", "bare", env, args, tenant_id, channel_id, token, workdir)
        print(f"bare: {json.dumps(bare)}", flush=True)
    figures = {**receiver, "target_rps": args.rate, "bare": bare,
               "max_rps_vs_bare": round(receiver["max_sustained"]["rps"] / max(bare["max_sustained"]["rps"], 0.1), 3),
               "machine": {"cpus": os.cpu_count(), "receiver": "Procfile (gunicorn)"}}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
