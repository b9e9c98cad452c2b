"""The webhook receiver under load: the real one under gunicorn (as the Procfile runs it) against a
bare Flask app under the same gunicorn settings that only checks the HMAC (or the Zoho channel token)
and enqueues one task.

Load comes from processes of their own (bench/support/load.py): signed Xero bodies of 1-50 events and
Zoho notifications over keep-alive connections, first on a fixed schedule (open loop: latency from
each request's due time, so a stall counts against every request due during it), then as fast as
they are answered (the maximum sustained rate). Both servers run side by side and the phases
alternate in short rounds (receiver, bare | bare, receiver | ...) so the machine's other load falls on
both alike; each server's rounds are pooled, and each round's two slices are also compared on their
own (the median of those ratios shrugs off a burst of other load that hit one slice). Every event of every 2xx answer must be in the broker
afterwards: the queued task messages are opened and their events counted. CPU per request is the
gunicorn workers' own (user + system, from /proc).

    .venv/bin/python bench/receiver.py [--rate 500] [--seconds 40] [--rounds 10] [--connections 16]

Environment: TEST_REDIS_PORT (or BENCH_REDIS_PORT) picks the Redis server (database 9 is flushed);
BENCH_PG_ADMIN_URL the PostgreSQL server. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.system import (  # noqa: E402
    _children,
    cpu_seconds as process_cpu_seconds,
    flush_redis,
    redis_url,
    start_receiver,
    throwaway_database,
)
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
            elif isinstance(args[0], str):  # the body as received (the receiver adds a sync id per event)
                events = len(json.loads(args[0])["events"])
                if len(args) > 1 and len(args[1]) != events:
                    raise AssertionError(f"a queued body of {events} events came with {len(args[1])} sync ids")
                total += events
            else:
                total += len(args[0])
    return total


def load(url: str, mode: str, seconds: float, args, tenant_id: str, channel_id: str, token: str, workdir: Path) -> dict:
    out = workdir / f"load-{uuid.uuid4().hex[:6]}.json"
    subprocess.run([sys.executable, str(Path(__file__).with_name("support") / "load.py"), "--url", url,
                    "--mode", mode, "--rate", str(args.rate), "--seconds", str(seconds),
                    "--connections", str(args.connections), "--processes", str(args.load_processes),
                    "--key", WEBHOOK_KEY, "--tenant", tenant_id, "--channel", channel_id, "--token", token,
                    "--out", str(out)], check=True)
    return json.loads(out.read_text())


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def phase(service, url: str, mode: str, seconds: float, args, tenant_id: str, channel_id: str, token: str,
          workdir: Path) -> dict:
    """One load run against one server: its raw figures, the broker checked and emptied afterwards."""
    flush_redis()
    workers = _children(service.process.pid)
    cpu_before = cpu_seconds(workers)
    figures = load(url, mode, seconds, args, tenant_id, channel_id, token, workdir)
    figures["cpu_s"] = cpu_seconds(workers) - cpu_before
    figures["events_enqueued"] = events_enqueued()
    flush_redis()
    return figures


def rps_of(run: dict) -> float:
    return len(run["latencies_ms"]) / max(run["elapsed_s"], 1e-9)


def summarise(runs: list[dict]) -> dict:
    """The rounds of one server in one mode, pooled: rates over their summed time, percentiles over
    every request."""
    latencies = sorted(latency for run in runs for latency in run["latencies_ms"])
    requests = len(latencies)

    def pct(p: float) -> float:
        return round(latencies[min(requests - 1, int(p * requests))], 2) if latencies else 0.0

    return {"requests": requests, "rps": round(requests / sum(run["elapsed_s"] for run in runs), 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": latencies[-1] if latencies else 0.0,
            "non_2xx": sum(run["non_2xx"] for run in runs), "events_sent": sum(run["events_sent"] for run in runs),
            "events_enqueued": sum(run["events_enqueued"] for run in runs),
            "cpu_ms_per_request": round(1000 * sum(run["cpu_s"] for run in runs) / max(requests, 1), 3)}


def main(argv: list[str] | None = None) -> int:
    # A terminated benchmark still stops the processes it started (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RECEIVER_RATE", 500)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_RECEIVER_SECONDS", 40)))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10,
                        help="each mode's time is split into this many slices, alternating between the servers")
    parser.add_argument("--profile", default=None, metavar="PREFIX",
                        help="record each gunicorn with py-spy into PREFIX-<app>.json (speedscope)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="mlc-bench-receiver-"))
    tenant_id, channel_id, token = str(uuid.uuid4()), "1000000123456", uuid.uuid4().hex
    apps = {"receiver": None, "bare": "bench.support.bare_receiver:app"}
    services, profilers = {}, []
    with throwaway_database() as database_url:
        env = receiver_env(database_url, workdir, token)
        prepare_database(env, tenant_id, channel_id, token)
        try:
            for name, app in apps.items():
                services[name] = start_receiver(env, workdir, app=app, name=name)
            time.sleep(1.0)
            if args.profile:
                profilers = [subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "-r", "100", "-f",
                     "speedscope", "-o", f"{args.profile.removesuffix('.json')}-{name}.json", "-p",
                     str(service.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for name, (service, _) in services.items()]
            figures: dict[str, dict] = {name: {} for name in apps}
            by_round: dict[str, list[float]] = {}
            for mode in ("rate", "max"):
                runs: dict[str, list[dict]] = {name: [] for name in apps}
                for round_number in range(args.rounds):
                    # ABBA order: whichever goes second in a round goes first in the next.
                    order = list(services.items()) if round_number % 2 == 0 else list(services.items())[::-1]
                    for name, (service, url) in order:
                        runs[name].append(phase(service, url, mode, args.seconds / args.rounds, args, tenant_id,
                                                channel_id, token, workdir))
                for name in apps:
                    figures[name][mode] = summarise(runs[name])
                    print(f"{name} {mode}: {json.dumps(figures[name][mode])}", flush=True)
                by_round[mode] = [round(rps_of(mine) / max(rps_of(bare), 0.1), 3)
                                  for mine, bare in zip(runs["receiver"], runs["bare"])]
        finally:
            for profiler in profilers:
                profiler.send_signal(2)
                profiler.wait(timeout=60)
            for service, _ in services.values():
                service.stop()

    def shaped(name: str) -> dict:
        return {**figures[name]["rate"], "max_sustained": figures[name]["max"]}

    result = {**shaped("receiver"), "target_rps": args.rate, "bare": shaped("bare"),
              "max_rps_vs_bare": round(figures["receiver"]["max"]["rps"] / max(figures["bare"]["max"]["rps"], 0.1), 3),
              # Each round's two neighbouring slices, compared: a burst of the machine's other load
              # lands in one round and moves its ratio, not the median.
              "max_rps_vs_bare_by_round": by_round["max"],
              "max_rps_vs_bare_median_round": statistics.median(by_round["max"]),
              "cpu_per_request_vs_bare": round(figures["receiver"]["max"]["cpu_ms_per_request"]
                                               / max(figures["bare"]["max"]["cpu_ms_per_request"], 0.001), 3),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "machine": {"cpus": os.cpu_count(), "receiver": "Procfile (gunicorn)"}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
