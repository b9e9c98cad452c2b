"""The least a webhook receiver can do, for bench/receiver.py to compare with: check the Xero HMAC
(or the Zoho channel token), publish one task with the body, answer. No parsing, no database.

Served by gunicorn with the Procfile's settings: ``bench.support.bare_receiver:app``.
"""

from __future__ import annotations

import hmac
import os

from celery import Celery
from flask import Flask, Response, request

from webhooks.signatures import verify_xero_signature

KEY = os.environ["XERO_WEBHOOK_KEY"]
ZOHO_TOKEN = os.environ.get("BENCH_ZOHO_TOKEN", "")
broker = Celery("bare", broker=os.environ["REDIS_URL"])
app = Flask("bare")


@app.post("/webhooks/xero")
def xero() -> Response:
    body = request.get_data()
    if not verify_xero_signature(body, request.headers.get("x-xero-signature"), KEY):
        return Response(b"", status=401)
    broker.send_task("bench.bare.xero", args=[body.decode()], queue="xero")
    return Response(b"", status=200)


@app.post("/webhooks/zoho")
def zoho() -> Response:
    body = request.get_json(silent=True) or {}
    if not hmac.compare_digest(str(body.get("token", "")), ZOHO_TOKEN):
        return Response(b"", status=403)
    broker.send_task("bench.bare.zoho", args=[0, body], queue="zoho")
    return Response(b'{"status": "queued"}', status=200, content_type="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b'{"status": "ok"}', content_type="application/json")
