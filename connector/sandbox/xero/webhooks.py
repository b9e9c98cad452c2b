"""Xero's webhooks: the queue of events that changes cause, the signed batch bodies, delivery with
redelivery of what was not answered 200, and the intent-to-receive check.

Pages: https://developer.xero.com/documentation/webhooks/overview and
https://developer.xero.com/documentation/webhooks/configuring-your-server (signature: base64
HMAC-SHA256 of the raw body with the webhook key, in ``x-xero-signature``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import threading
from dataclasses import dataclass

import requests

from connector.clock import Clock
from connector.sandbox.xero.formats import API_PREFIX
from connector.sandbox.xero.state import Org

RESOURCE_PATHS = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}


@dataclass
class ITRProbe:
    correctly_signed: bool
    status: int
    body: bytes
    set_cookie: bool


@dataclass
class ITRResult:
    ok: bool
    probes: list[ITRProbe]
    problems: list[str]


class WebhookSender:
    """Pending events (each with a sequence number) and their delivery, under the sandbox's ``lock``."""

    def __init__(self, clock: Clock, lock: threading.RLock, rng: random.Random, *, webhook_key: str) -> None:
        self.clock = clock
        self.lock = lock
        self.random = rng
        self.webhook_key = webhook_key
        self.events: list[dict] = []
        self._sequence = 0

    def queue(self, org: Org, category: str, resource_id: str, event_type: str, data: dict | None = None) -> None:
        """One event for a change (the caller holds the lock)."""
        self._sequence += 1
        moment = self.clock.now()
        event = {
            "resourceId": resource_id,
            "eventDateUtc": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": org.id,
            "tenantType": "ORGANISATION",
            "sequence": self._sequence,
        }
        if data is not None:
            event["data"] = data
        self.events.append(event)

    def pending(self, base_url: str | None) -> list[dict]:
        with self.lock:
            return [_payload(e, base_url) for e in self.events]

    def body(self, events: list[dict], *, entropy: str | None = None) -> bytes:
        sequences = [e.get("sequence", 0) for e in events] or [0]
        body = {
            "events": [{k: v for k, v in e.items() if k != "sequence"} for e in events],
            "firstEventSequence": min(sequences),
            "lastEventSequence": max(sequences),
            "entropy": entropy or _entropy(self.random),
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def sign(self, body: bytes) -> str:
        return _signature(self.webhook_key.encode("utf-8"), body)

    def deliver(self, url: str, base_url: str | None, *, max_events_per_post: int, bad_signature: bool,
                timeout: float) -> list[int]:
        """POST pending events in batches; each batch is dropped only once answered 200.

        Stops at the first failed batch, leaving it and the rest pending for redelivery. A status
        of 0 means no HTTP answer (connection error or timeout).
        """
        statuses: list[int] = []
        while True:
            with self.lock:
                batch = self.events[:max_events_per_post]
                if not batch:
                    return statuses
                payload = [{**_payload(e, base_url), "sequence": e["sequence"]} for e in batch]
            body = self.body(payload)
            status = _post(url, body, _bad_signature(body) if bad_signature else self.sign(body), timeout)
            statuses.append(status)
            if status != 200:
                return statuses
            with self.lock:
                delivered = {e["sequence"] for e in batch}
                self.events = [e for e in self.events if e["sequence"] not in delivered]

    def intent_to_receive(self, url: str, *, probes: int, timeout: float) -> ITRResult:
        """Xero's ITR check: empty-events probes, some signed right and some wrong."""
        signed_right = [i % 2 == 0 for i in range(max(probes, 2))]
        self.random.shuffle(signed_right)
        results: list[ITRProbe] = []
        problems: list[str] = []
        for correct in signed_right:
            # Xero's own ITR bodies are not canonical JSON: keep that spacing so receivers must hash raw bytes.
            body = (
                '{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "%s"}'
                % _entropy(self.random)
            ).encode()
            signature = self.sign(body) if correct else _bad_signature(body)
            try:
                answer = requests.post(url, data=body, headers=_headers(signature), timeout=timeout)
                probe = ITRProbe(correct, answer.status_code, answer.content, "set-cookie" in answer.headers)
            except requests.RequestException:
                probe = ITRProbe(correct, 0, b"", False)
            results.append(probe)
            if correct and probe.status != 200:
                problems.append(f"Response to correctly signed payload not 200 (got {probe.status})")
            if not correct and probe.status != 401:
                problems.append(f"Response to incorrectly signed payload not 401 (got {probe.status})")
            if probe.body:
                problems.append("Response body was not empty")
            if probe.set_cookie:
                problems.append("Response set a cookie")
        return ITRResult(not problems, results, problems)


def _payload(event: dict, base_url: str | None) -> dict:
    base = base_url or "https://api.xero.com"
    return {
        "resourceUrl": f"{base}{API_PREFIX}/{RESOURCE_PATHS[event['eventCategory']]}/{event['resourceId']}",
        **{k: v for k, v in event.items() if k != "sequence"},
    }


def _signature(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _bad_signature(body: bytes) -> str:
    return _signature(b"not-the-webhook-key", body)


def _post(url: str, body: bytes, signature: str, timeout: float) -> int:
    try:
        return requests.post(url, data=body, headers=_headers(signature), timeout=timeout).status_code
    except requests.RequestException:
        return 0


def _entropy(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(20))


def _headers(signature: str) -> dict:
    return {"Content-Type": "application/json; charset=utf-8", "x-xero-signature": signature}
