"""A real HTTP server on 127.0.0.1 for tests and benchmarks: fixed routes, scripted failures, a log of requests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """What one path answers. `hang` holds the answer until the server stops (a source that never replies)."""

    body: bytes = b""
    content_type: str = "application/xml; charset=utf-8"
    status: int = 200
    delay: float = 0.0
    hang: bool = False
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The first `fail_first` requests get 503 Service Unavailable (a server that recovers).
    fail_first: int = 0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many sources connect at once; the default backlog of 5 would make the kernel drop and retry connections.
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (the point of the hanging route) makes the late answer fail; that is expected, and
        # a traceback on stderr would land in whichever test captures output next.
        pass


class HTTPFixtureServer:
    """Serves `routes` (path → Route) on 127.0.0.1 on a free port, in a background thread."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="http-fixture",
                                        daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def start(self) -> HTTPFixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HTTPFixtureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                route = fixture.routes.get(self.path.split("?", 1)[0])
                status = 404 if route is None else route.status
                with fixture._lock:
                    if route is not None and route.fail_first > 0:
                        route.fail_first -= 1
                        status = 503
                if route is not None and route.etag and self.headers.get("If-None-Match") == route.etag:
                    status = 304
                with fixture._lock:
                    fixture.requests.append(Request(self.path, dict(self.headers.items()), status))
                if route is None:
                    self._answer(404, b"not found", "text/plain", {})
                    return
                if route.hang:
                    fixture.stopping.wait(30)
                elif route.delay:
                    time.sleep(route.delay)
                headers = dict(route.headers)
                if route.etag:
                    headers["ETag"] = route.etag
                if route.last_modified:
                    headers["Last-Modified"] = route.last_modified
                body = b"" if status == 304 else b"busy" if status == 503 else route.body
                self._answer(status, body, route.content_type, headers)

            def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    if status != 304:
                        self.send_header("Content-Type", content_type)
                        self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a timeout under test): nothing to answer to

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
