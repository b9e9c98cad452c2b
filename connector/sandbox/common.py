"""Shared machinery of the simulators: WSGI plumbing, request log, fault injection, serving."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connector.clock import SYSTEM_CLOCK, Clock
from connector.json_codec import dumps_lenient


@dataclass
class RequestRecord:
    """One request the simulator served. Times are the simulator clock's ``time()``."""

    started: float
    method: str
    path: str
    query: str
    tenant: str | None
    status: int = 0
    finished: float | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class Fault:
    # "status"; "timeout" (no answer, nothing done); "lost" (processed, then the answer never arrives);
    # "latency" (held open for ``delay`` seconds, then processed and answered normally); "hold" (held
    # until the test releases it)
    kind: str
    status: int = 500
    body: str | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    reached: threading.Event = field(default_factory=threading.Event)  # "hold": the request has arrived
    gate: threading.Event = field(default_factory=threading.Event)  # "hold": set to let it through
    method: str | None = None  # only requests with this HTTP method; None: any


class Hold:
    """A request kept open before the server handles it, until ``release()`` (or ``timeout``)."""

    def __init__(self, fault: Fault) -> None:
        self._fault = fault

    def wait_reached(self, timeout: float = 30.0) -> bool:
        return self._fault.reached.wait(timeout)

    def release(self) -> None:
        self._fault.gate.set()


FAULT_KINDS = ("status", "timeout", "lost", "latency")


class FaultInjector:
    """Queued faults: ``fail_next(3, status=500)`` makes the next three matching calls fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[str | None, Fault]] = []

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        timeout: bool = False,
        lost_response: bool = False,
        latency: bool = False,
        delay: float = 5.0,
        path_prefix: str | None = None,
        method: str | None = None,
        body: str | None = None,
        headers: dict | None = None,
    ) -> None:
        fault = Fault(
            kind="latency" if latency else "lost" if lost_response else "timeout" if timeout else "status",
            status=status,
            body=body,
            headers=headers or {},
            delay=delay,
            method=method.upper() if method else None,
        )
        with self._lock:
            self._queue.extend((path_prefix, fault) for _ in range(count))

    def hold_next(self, *, path_prefix: str | None = None, timeout: float = 30.0) -> Hold:
        """The next matching request waits, before it is handled, until the test releases it."""
        fault = Fault(kind="hold", delay=timeout)
        with self._lock:
            self._queue.append((path_prefix, fault))
        return Hold(fault)

    def take(self, path: str, method: str = "GET") -> Fault | None:
        with self._lock:
            for i, (prefix, fault) in enumerate(self._queue):
                if (prefix is None or path.startswith(prefix)) and fault.method in (None, method.upper()):
                    del self._queue[i]
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)


def json_response(payload, status: int = 200, headers: dict | None = None, content_type: str | None = None) -> Response:
    body = dumps_lenient(payload)
    return Response(
        body,
        status=status,
        headers=headers or {},
        content_type=content_type or "application/json; charset=utf-8",
    )


class SandboxApp:
    """Base WSGI app: logs every request, applies injected faults, then calls ``handle``."""

    name = "sandbox"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.faults = FaultInjector()
        self.requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self.base_url: str | None = None  # set by serve()

    # subclasses implement this; ``record`` may be enriched (e.g. tenant) before returning
    def handle(self, request: Request, record: RequestRecord) -> Response:  # pragma: no cover
        raise NotImplementedError

    def tenant_of(self, request: Request) -> str | None:
        return None

    def fault_response(self, fault: Fault) -> Response:
        return Response(fault.body or "", status=fault.status, headers=fault.headers)

    def __call__(self, environ, start_response):
        request = Request(environ)
        record = RequestRecord(
            started=self.clock.time(),
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            tenant=self.tenant_of(request),
        )
        with self._log_lock:
            self.requests.append(record)
        fault = self.faults.take(request.path, request.method)
        try:
            if fault is not None and fault.kind == "latency":
                time.sleep(fault.delay)
                response = self.handle(request, record)
            elif fault is not None and fault.kind == "timeout":
                time.sleep(fault.delay)
                response = Response("", status=504)
            elif fault is not None and fault.kind == "hold":
                fault.reached.set()
                fault.gate.wait(fault.delay)
                response = self.handle(request, record)
            elif fault is not None and fault.kind == "lost":
                # The server did the work (a token rotated, a record saved); the client times out waiting.
                self.handle(request, record)
                time.sleep(fault.delay)
                response = Response("", status=504)
            elif fault is not None:
                response = self.fault_response(fault)
            else:
                response = self.handle(request, record)
        except HTTPException as exc:
            response = exc.get_response()
        record.status = response.status_code
        record.finished = self.clock.time()
        return response(environ, start_response)

    def calls(self, *, path_prefix: str = "", tenant: str | None = None, method: str | None = None) -> list[RequestRecord]:
        with self._log_lock:
            items = list(self.requests)
        return [
            r
            for r in items
            if r.path.startswith(path_prefix)
            and (tenant is None or r.tenant == tenant)
            and (method is None or r.method == method)
        ]


class _QuietRequestHandler(WSGIRequestHandler):
    """No access-log line per request (errors are still logged): a benchmark's tens of thousands of
    calls would otherwise each be formatted and written."""

    def log_request(self, code="-", size="-") -> None:
        pass


class ServedApp:
    """A simulator running on a background thread at ``url``; ``quiet``: no access log."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False) -> None:
        self.server = make_server(host, port, app, threaded=True,
                                  request_handler=_QuietRequestHandler if quiet else None)
        self.url = f"http://{host}:{self.server.server_port}"
        if isinstance(app, SandboxApp):
            app.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"serve-{self.url}", daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "ServedApp":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def serve(app: Callable, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False) -> ServedApp:
    return ServedApp(app, host, port, quiet=quiet)
