"""Load for bench/receiver.py, in processes of its own: signed Xero webhook bodies (1-50 events each)
and Zoho notifications over keep-alive connections, on a fixed schedule or as fast as answered.

    python bench/support/load.py --url URL --mode rate|max --rate 500 --seconds 20 --out FILE ...

``rate`` is open loop: request n is due at start + n / rate whatever happened to the requests
before it, and its latency runs from that due time, not from when a connection got round to sending
it. A server that stalls therefore shows its stall in every request that was due meanwhile, instead
of the load quietly slowing down to what the server manages (coordinated omission). ``max`` is
closed loop: each connection sends its next request once the last one is answered.

The connections are spread over ``--processes`` processes, so one interpreter's lock does not
become the bottleneck that is measured. Writes one JSON object to FILE: requests, rps (answered per
second), elapsed_s, p50_ms, p99_ms, max_ms, non_2xx, statuses, events_sent (in 2xx answers) and
every latency (latencies_ms, sorted).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from webhooks.signatures import xero_signature  # noqa: E402

# Time for every process to build its requests before the first one is due.
START_MARGIN_SECONDS = 0.3


def build_requests(count: int, *, key: str, tenant_id: str, channel_id: str, token: str, zoho_share: float,
                   rng: random.Random) -> list[tuple[str, bytes, dict, int]]:
    """(path, body, headers, events in it), made before the clock starts."""
    made = []
    for n in range(count):
        if rng.random() < zoho_share:
            body = json.dumps({"channel_id": channel_id, "token": token, "module": "Accounts", "operation": "update",
                               "ids": [str(4876876000000000000 + n)], "server_time": 1764500000000,
                               "affected_fields": []}).encode()
            made.append(("/webhooks/zoho", body, {"Content-Type": "application/json"}, 1))
            continue
        events = [{"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.UUID(int=rng.getrandbits(128))}",
                   "resourceId": str(uuid.UUID(int=rng.getrandbits(128))), "eventDateUtc": "2026-11-30T12:00:00.000",
                   "eventType": rng.choice(("CREATE", "UPDATE")), "eventCategory": rng.choice(("INVOICE", "CONTACT")),
                   "tenantId": tenant_id, "tenantType": "ORGANISATION"} for _ in range(rng.randint(1, 50))]
        body = json.dumps({"events": events, "firstEventSequence": n, "lastEventSequence": n,
                           "entropy": f"{rng.getrandbits(80):020x}"}).encode()
        made.append(("/webhooks/xero", body, {"Content-Type": "application/json; charset=utf-8",
                                              "x-xero-signature": xero_signature(body, key)}, len(events)))
    return made


def run_share(args, index: int, ready, go, start_at, results) -> None:
    """One process's share: requests n with n % processes == index, over its own connections."""
    prepared = build_requests(args.distinct, key=args.key, tenant_id=args.tenant, channel_id=args.channel,
                              token=args.token, zoho_share=args.zoho_share, rng=random.Random(args.seed))
    target = urlsplit(args.url)
    ready.put(index)
    go.wait()
    # time.monotonic is CLOCK_MONOTONIC on Linux: one clock for every process on the machine.
    start = start_at.value
    deadline = start + args.seconds
    sequence = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    totals = {"events_sent": 0}

    def connection() -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine: list[float] = []
        mine_status: dict[int, int] = {}
        mine_events = 0
        while True:
            n = next(sequence) * args.processes + index
            if args.mode == "rate":
                due = start + n / args.rate
                if due >= deadline:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            else:
                due = time.monotonic()
                if due >= deadline:
                    break
            path, body, headers, events = prepared[n % len(prepared)]
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                status = 0
            mine.append(time.monotonic() - due)
            mine_status[status] = mine_status.get(status, 0) + 1
            if 200 <= status < 300:
                mine_events += events
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in mine_status.items():
                statuses[status] = statuses.get(status, 0) + count
            totals["events_sent"] += mine_events

    threads = [threading.Thread(target=connection) for _ in range(args.connections_per_process)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"latencies": latencies, "statuses": statuses, "events_sent": totals["events_sent"],
                 "finished": time.monotonic()})


def run(args) -> dict:
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    processes = [context.Process(target=run_share, args=(args, index, ready, go, start_at, results))
                 for index in range(args.processes)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    start_at.value = time.monotonic() + START_MARGIN_SECONDS
    go.set()
    shares = [results.get(timeout=args.seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    start = start_at.value
    latencies = sorted(latency for share in shares for latency in share["latencies"])
    statuses: dict[int, int] = {}
    for share in shares:
        for status, count in share["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    # Answered per second over the whole run, including the time to answer what was due at the end.
    elapsed = max(max(share["finished"] for share in shares), start + args.seconds) - start

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else 0.0

    return {"requests": len(latencies), "rps": round(len(latencies) / elapsed, 1), "elapsed_s": elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(1000 * latencies[-1], 2) if latencies else 0.0,
            "non_2xx": sum(c for s, c in statuses.items() if not 200 <= s < 300),
            "statuses": {str(k): v for k, v in statuses.items()},
            "events_sent": sum(share["events_sent"] for share in shares),
            "latencies_ms": [round(1000 * latency, 3) for latency in latencies]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["rate", "max"], default="rate")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16, help="in all, spread over the processes")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--zoho-share", type=float, default=0.2)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    args.processes = max(1, min(args.processes, args.connections))
    args.connections_per_process = max(1, args.connections // args.processes)
    Path(args.out).write_text(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
