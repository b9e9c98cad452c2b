"""Start-up checks shared by every entry point: fail closed, in one line, before any work.

A production process (gunicorn receiver, celery worker, beat, the CLI commands that touch
production state) refuses to start when its configuration is missing or wrong, or when Redis
or the database cannot be reached, with one line naming the variable, never a traceback.
Each entry point reads the env file (``.env``) first: connector.settings.load_env_file.
"""

from __future__ import annotations

import sys

from connector.errors import ConfigError
from connector.settings import PROCESS_NEEDS, Settings, load_env_file, log_settings

EXIT_CONFIG = 2
# gunicorn halts (instead of booting the worker again and again) when a worker exits with this.
EXIT_GUNICORN_APP_LOAD_ERROR = 4


def settings_or_exit() -> Settings:
    """The environment's settings (with the env file's), or one line and exit when a value is malformed."""
    try:
        load_env_file()
        return Settings.from_env()
    except ConfigError as exc:
        refuse(str(exc))


def check_can_start(process: str, settings: Settings) -> None:
    """ConfigError (one line) unless ``process`` has its variables, a usable LOG_LEVEL and LOG_FORMAT, and
    reaches Redis and the database."""
    check_log_settings()
    settings.require(process)
    needs = PROCESS_NEEDS[process]
    if "REDIS_URL" in needs and settings.redis_url is not None:
        probe_redis(settings.redis_url)
    if "DATABASE_URL" in needs and settings.database_url:
        probe_database(settings.database_url)


def check_log_settings() -> None:
    from connector.logs import resolve_format, resolve_level

    level, log_format = log_settings()
    resolve_level(level)
    resolve_format(log_format, sys.stderr)


def probe_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    where = _where(client)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        # Redis' own messages name host and port only, never the password.
        raise ConfigError(f"REDIS_URL: cannot reach Redis at {where} ({_first_line(exc)})") from None
    finally:
        client.close()


def probe_database(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from connector.store.db import probe_database as connect_once

    shown = make_url(url).render_as_string(hide_password=True)
    try:
        connect_once(url)
    except (SQLAlchemyError, OSError, ImportError) as exc:
        reason = _first_line(getattr(exc, "orig", None) or exc)
        raise ConfigError(f"DATABASE_URL: cannot open the database {shown} ({reason})") from None


def exit_unless_ready(process: str, *, exit_code: int = EXIT_CONFIG) -> None:
    """For entry points that cannot return an exit code (gunicorn's app import, celery signals)."""
    try:
        load_env_file()
        check_can_start(process, Settings.from_env())
    except ConfigError as exc:
        refuse(str(exc), exit_code=exit_code)


def refuse(message: str, *, exit_code: int = EXIT_CONFIG) -> None:
    # sys.__stderr__: celery beat has redirected sys.stderr into its logger by now.
    print(f"configuration error: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
    raise SystemExit(exit_code)


def _where(client) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
