"""A redis-server of the bench's own on a free port, keeping nothing on disk: the real Redis the connector runs
on, private to one bench process (so flushing it touches nobody else's keys). None when no redis-server is on
PATH: the caller then falls back to the embedded stand-in (fakeredis), which is several times slower."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench.support.system import stop_process


class OwnRedis:
    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(workdir), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_up(self, attempts: int = 200) -> None:
        import redis

        for _ in range(attempts):
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)  # a process starting: the only wall-clock wait of the bench
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        stop_process(self.process)


def own_redis(workdir: Path) -> OwnRedis | None:
    if shutil.which("redis-server") is None:
        return None
    server = OwnRedis(workdir)
    server.wait_up()
    return server
