"""Running the app with uvicorn: in the foreground (`digest serve`) or in a background thread (tests)."""

from __future__ import annotations

import errno
import logging
import re
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from digest.errors import DigestError

# The API's subscriber addresses, likewise: an access log is no list of who subscribes.
_TOKEN_IN_PATH = re.compile(r"/(avmeld|bekreft|innstillinger|api/v1/subscribers)/[^/?\s\"]+")


class TokenMaskingFilter(logging.Filter):
    """Access logs must not keep the tokens in our URLs: each one unsubscribes or edits someone's profile."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_PATH.sub(r"/\1/…", a) if isinstance(a, str) else a for a in record.args)
        return True


def _config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    logging.getLogger("uvicorn.access").addFilter(TokenMaskingFilter())
    # uvicorn's proxy_headers would believe X-Forwarded-For from any local client; the app decides instead, from
    # `trusted_proxies` (digest.web.context.client_ip).
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                          proxy_headers=False, lifespan="off")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a DigestError in one line (bad port, unknown host, port in use).

    Bound before `digest serve` says "Serving on …", so a start-up problem is the only thing it prints.
    """
    if not 1 <= port <= 65535:
        raise DigestError(f"--port {port}: a port is a number from 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, ValueError):
        raise DigestError(f"--host {host!r}: not an address or a host name this machine can resolve") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise DigestError(f"cannot listen on {host}:{port}: the port is in use (is `digest serve` running "
                              "already?)") from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise DigestError(f"cannot listen on {host}:{port}: {host} is not an address of this machine") from None
        if err.errno == errno.EACCES:
            raise DigestError(f"cannot listen on {host}:{port}: no permission (ports below 1024 need root)") from None
        raise DigestError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def serve(app: FastAPI, *, host: str, port: int, listener: socket.socket | None = None) -> None:
    sock = listener or listen(host, port)
    server = uvicorn.Server(_config(app, host, port, "info"))
    server.run(sockets=[sock])
    if not server.started:
        raise DigestError(f"could not listen on {host}:{port} (is another program using the port?)")


class ServerThread:
    """The app on host:port in a daemon thread; `with ServerThread(app, port=…) as url:` serves until the end."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int) -> None:
        self.server = uvicorn.Server(_config(app, host, port, "warning"))
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web app did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
