"""`connector flower`: Flower, only behind HTTP basic auth.

Flower shows every task's arguments and can revoke tasks and shut workers down, so it never starts
without ``FLOWER_BASIC_AUTH`` (``user:password[,user2:password2]``). Flower reads that variable itself
(flower/command.py applies every FLOWER_* variable), so the password never appears in a process list.
"""

from __future__ import annotations

import argparse


def basic_auth_problem(value: str | None) -> str | None:
    """Why FLOWER_BASIC_AUTH cannot protect Flower, or None when it can."""
    if not value or not value.strip():
        return ("FLOWER_BASIC_AUTH is not set; Flower would be open to anyone. "
                "Set it to user:password (e.g. FLOWER_BASIC_AUTH=ops:$(openssl rand -hex 16))")
    for entry in value.split(","):
        user, sep, password = entry.partition(":")
        if not (sep and user.strip() and password):
            return "FLOWER_BASIC_AUTH must be user:password[,user2:password2] with no empty user or password"
    return None


def cmd_flower(args: argparse.Namespace) -> int:
    from connector.errors import ConfigError
    from connector.settings import flower_basic_auth, platform_port

    problem = basic_auth_problem(flower_basic_auth())
    if problem:
        raise ConfigError(f"Flower cannot start: {problem}")
    paas_port = platform_port()
    port = args.port or paas_port or 5555
    # On a PaaS (PORT set) the router reaches the process from outside; elsewhere stay on loopback.
    address = args.address or ("0.0.0.0" if paas_port else "127.0.0.1")
    from connector import logs
    from workers.app import app

    logs.setup("flower")
    # --logging=none: tornado leaves the logging set up above alone (its default replaces it with its own).
    argv = ["flower", f"--port={port}", f"--address={address}", "--logging=none"]
    if args.url_prefix:
        argv.append(f"--url_prefix={args.url_prefix}")
    return int(app.start(argv) or 0)


def add_parser(sub) -> None:
    p = sub.add_parser("flower", help="run Flower (the Celery dashboard); refuses to start without FLOWER_BASIC_AUTH")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: $PORT, else 5555)")
    p.add_argument("--address", default=None,
                   help="address to bind (default: 0.0.0.0 when $PORT is set, as on a PaaS; else 127.0.0.1)")
    p.add_argument("--url-prefix", default=None, help="serve under this path prefix (behind a proxy)")
    p.set_defaults(func=cmd_flower)
