"""Load for bench/receiver.py, run in its own process: signed Xero webhook bodies (1-50 events each)
and Zoho notifications over keep-alive connections, at a fixed rate or as fast as answered.

    python bench/support/load.py --url URL --mode rate|max --rate 500 --seconds 20 --out FILE ...

Writes one JSON object to FILE: requests, non_2xx, events_sent (in answered 2xx requests), latencies.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from webhooks.signatures import xero_signature  # noqa: E402


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
                           "entropy": uuid.uuid4().hex[:20]}).encode()
        made.append(("/webhooks/xero", body, {"Content-Type": "application/json; charset=utf-8",
                                              "x-xero-signature": xero_signature(body, key)}, len(events)))
    return made


def run(args) -> dict:
    rng = random.Random(args.seed)
    prepared = build_requests(args.distinct, key=args.key, tenant_id=args.tenant, channel_id=args.channel,
                              token=args.token, zoho_share=args.zoho_share, rng=rng)
    target = urlsplit(args.url)
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    events_sent = 0
    start = time.perf_counter() + 0.2
    deadline = start + args.seconds

    def client() -> None:
        nonlocal events_sent
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine: list[float] = []
        mine_status: dict[int, int] = {}
        mine_events = 0
        while True:
            n = next(counter)
            if args.mode == "rate":
                due = start + n / args.rate
                if due >= deadline:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            elif time.perf_counter() >= deadline:
                break
            path, body, headers, events = prepared[n % len(prepared)]
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                status = 0
            mine.append(time.perf_counter() - sent)
            mine_status[status] = mine_status.get(status, 0) + 1
            if 200 <= status < 300:
                mine_events += events
        with lock:
            latencies.extend(mine)
            for status, count in mine_status.items():
                statuses[status] = statuses.get(status, 0) + count
            events_sent += mine_events

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(time.perf_counter(), deadline) - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else 0.0

    return {"requests": len(latencies), "rps": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "non_2xx": sum(c for s, c in statuses.items() if not 200 <= s < 300),
            "statuses": {str(k): v for k, v in statuses.items()}, "events_sent": events_sent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["rate", "max"], default="rate")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--zoho-share", type=float, default=0.2)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
