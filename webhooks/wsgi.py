"""WSGI entry point for production: `gunicorn 'webhooks.wsgi:app'`.

Composition lives here, not in the receiver: the Celery app to enqueue with and the channel
store to check Zoho tokens against, both from the environment. The first access of ``app``
refuses to start (one line, gunicorn halts) without the receiver's configuration or with Redis or
the database out of reach (workers.startup).
"""

from __future__ import annotations

import logging

from flask import Flask

logger = logging.getLogger("webhooks")


def connection_status(deps) -> dict:
    """The operator's view served at /status: ``connector status --json`` (connector/status.py), with an
    overall "ok" or "degraded" (some connection cannot run)."""
    from connector.status import collect_status

    status = collect_status(deps)
    degraded = any(c["state"] != "active" for c in status["connections"])
    return {"status": "degraded" if degraded else "ok", **status}


def metrics_exposition(deps):
    """What /metrics answers: the counters of every gunicorn worker of this host (the multiprocess folder),
    plus the shared state (budget, queues, tokens, channels, parked work) read now."""
    from connector import metrics

    shared = metrics.SharedStateCollector(deps)

    def exposition() -> tuple[bytes, str]:
        # The master's folder (inherited) under gunicorn; none under a single-process server.
        folder = metrics.group_folder() or deps.settings.metrics_dir
        return metrics.exposition(metrics.scrape_registry(folder, shared))

    return exposition


def build_receiver() -> Flask:
    from connector import logs
    from connector.heartbeats import RECEIVER
    from connector.operator_console import ConsoleData
    from webhooks import create_app
    from webhooks.channels import RememberedChannels
    from webhooks.enqueue import celery_enqueuer, reuse_redis_clients, stop_task_sent_events
    from workers.app import app as celery_app
    from workers.deps import get_deps

    logs.setup("web")
    deps = get_deps()
    stop_task_sent_events(celery_app)
    reuse_redis_clients(celery_app)
    if not deps.settings.admin_token:
        logger.warning("receiver.operator_routes_disabled: CONNECTOR_ADMIN_TOKEN is not set; /oauth, /console, "
                       "/status and /metrics answer 401 to everyone")
    return create_app(
        webhook_key=deps.settings.xero_webhook_key,
        enqueue=celery_enqueuer(celery_app),
        zoho_channels=RememberedChannels(deps.store.channels),
        max_body_bytes=deps.settings.max_webhook_bytes,
        # Read on each call, not cached: /healthz must say what is true now.
        liveness={"redis": lambda: deps.redis.ping(), "database": lambda: deps.store.ping()},
        status=lambda: connection_status(deps),
        oauth=deps.connector(),
        admin_token=deps.settings.admin_token,
        public_url=deps.settings.public_url,
        metrics=metrics_exposition(deps),
        console=ConsoleData(deps),
        heartbeat=lambda: deps.heartbeats.beat(RECEIVER),
    )


_app: Flask | None = None


def __getattr__(name: str):
    # Built on first access (gunicorn's `webhooks.wsgi:app`), not on import.
    global _app
    if name == "app":
        if _app is None:
            from workers.startup import EXIT_GUNICORN_APP_LOAD_ERROR, exit_unless_ready

            exit_unless_ready("receiver", exit_code=EXIT_GUNICORN_APP_LOAD_ERROR)
            _app = build_receiver()
        return _app
    raise AttributeError(name)
