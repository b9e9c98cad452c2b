"""Waits and time limits fit the broker's redelivery; the daily sweep survives restarts and waits for a
running poll; the token-refresh lock outlives the slowest refresh call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from celery.exceptions import Retry
from celery.schedules import maybe_schedule

from connector.coalesce import DEFAULT_LEASE_SECONDS
from connector.errors import TransientError
from connector.http import DEFAULT_TIMEOUT


def celery_config_for_redis(**env_overrides: str) -> dict:
    """celeryconfig as a deployment with Redis loads it (a fresh process: it reads the environment once)."""
    code = ("import json, celeryconfig as c; from connector.settings import Settings; s = Settings.from_env(); "
            "print(json.dumps({'options': c.broker_transport_options, "
            "'hard': c.task_time_limit, 'soft': c.task_soft_time_limit, 'acks_late': c.task_acks_late, "
            "'countdown': s.max_broker_countdown, 'lease': s.lease_seconds, "
            "'beat': {k: v['schedule'] if isinstance(v['schedule'], float) else None "
            "for k, v in c.beat_schedule.items()}}))")
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
           **env_overrides}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# The defaults, and the short timings the fault suite runs with: every relation holds for both.
@pytest.mark.parametrize("env_overrides", [
    {},
    {"CELERY_VISIBILITY_TIMEOUT": "45s", "CONNECTOR_LEASE_SECONDS": "15", "CONNECTOR_SWEEP_INTERVAL": "5"},
], ids=["defaults", "short"])
def test_every_wait_and_time_limit_fits_inside_the_visibility_timeout(env_overrides):
    from connector.settings import Settings
    from workers.base import max_broker_countdown
    from workers.xero_tasks import rate_limit_countdown

    config = celery_config_for_redis(**env_overrides)
    visibility = config["options"]["visibility_timeout"]
    if env_overrides:
        assert visibility == 45 and config["lease"] == 15 and config["beat"]["sweep-buffers"] == 5
    else:
        assert config["lease"] == DEFAULT_LEASE_SECONDS
    # A killed worker parent's unacknowledged messages come back within minutes...
    assert visibility <= 600
    # ...no task still running is redelivered (killed first)...
    assert config["soft"] < config["hard"] < visibility
    # ...and no countdown is long enough to be delivered twice (the Redis transport redelivers an ETA
    # message still waiting in a worker once the visibility timeout passes).
    assert config["countdown"] < visibility
    assert max_broker_countdown() == Settings.from_env().max_broker_countdown
    assert rate_limit_countdown(24 * 3600) <= max_broker_countdown() + 0.25  # even a day-long Retry-After
    # A killed worker child's buffered ids are reclaimed within minutes (lease, then the sweep).
    assert config["lease"] + config["beat"]["sweep-buffers"] <= 300


def test_configure_changes_the_longest_broker_countdown_and_the_task_time_limits():
    """What derives from CELERY_VISIBILITY_TIMEOUT follows the settings given to configure(), not only
    the environment the process started with (the demo and tests configure their own)."""
    from dataclasses import replace

    import celeryconfig
    from workers import deps
    from workers.app import app
    from workers.base import max_broker_countdown
    from workers.xero_tasks import rate_limit_countdown

    saved_deps, saved_limits = deps._deps, (app.conf.task_time_limit, app.conf.task_soft_time_limit)
    short = replace(deps.get_deps().settings, visibility_timeout=45.0)
    try:
        deps.configure(short)
        assert max_broker_countdown() == short.max_broker_countdown == 18.0
        assert rate_limit_countdown(24 * 3600) <= 18.0 + 0.25
        limits = (short.task_time_limit, short.task_soft_time_limit)
        assert limits == pytest.approx((36.0, 31.5))
        assert (app.conf.task_time_limit, app.conf.task_soft_time_limit) == limits
        on_redis = celeryconfig.settings_config(replace(short, broker_url="redis://127.0.0.1:1/0"))
        assert on_redis["broker_transport_options"] == {"visibility_timeout": 45.0}
        assert (on_redis["task_time_limit"], on_redis["task_soft_time_limit"]) == limits
    finally:
        deps._deps = saved_deps
        app.conf.update(task_time_limit=saved_limits[0], task_soft_time_limit=saved_limits[1])


def test_the_daily_sweep_runs_every_day_though_beat_restarts_twice_a_day():
    import celeryconfig

    schedule = maybe_schedule(celeryconfig.beat_schedule["xero-full-sweep"]["schedule"])
    start = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
    now = start
    schedule.nowfun = lambda: now
    last_run, runs = start, []
    while now < start + timedelta(days=3):
        if (now - start) % timedelta(hours=12) == timedelta(0):
            last_run = now  # a deploy: beat starts afresh (no schedule file survives on a PaaS)
        if schedule.is_due(last_run).is_due:
            runs.append(now)
            last_run = now
        now += timedelta(minutes=5)
    assert len({run.date() for run in runs}) == 3 and len(runs) == 3  # once a day, every day


def test_a_full_sweep_that_finds_a_poll_running_waits_for_it(world):
    from workers.xero_tasks import poll_xero

    world.deps.redis.set(f"xero:poll-lock:{world.connection_id}", "a running poll", ex=60)
    with pytest.raises(Retry):
        poll_xero.run(world.connection_id, None, True)
    assert poll_xero.run(world.connection_id, None, False) == 0  # a delta poll's cursor is covered: skipped


def test_the_token_refresh_lock_outlives_the_slowest_refresh_call(world):
    deps = world.deps
    tokens = deps.xero_tokens(world.connection_id)  # the timeouts workers use
    lock_key = f"connector:oauth-refresh:xero:{tokens.connection_id}"
    world.xero.faults.fail_next(1, timeout=True, delay=1.5, path_prefix="/connect/token")  # a slow answer
    seen: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            ttl = deps.redis.pttl(lock_key)
            if ttl > 0:
                seen.append(ttl)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with pytest.raises(TransientError):
        tokens.refresh(force=True)
    watcher.join()
    # Three transport attempts (connector.http.transport_retry), each up to its connect + read timeouts.
    worst_case_ms = 3 * sum(DEFAULT_TIMEOUT) * 1000
    assert seen and seen[0] > worst_case_ms
