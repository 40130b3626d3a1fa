"""Running the app with uvicorn: in the foreground (`digest serve`) or in a background thread (tests)."""

from __future__ import annotations

import logging
import re
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
    # proxy_headers trusts X-Forwarded-For only from 127.0.0.1 (uvicorn's default), i.e. a local reverse proxy.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                          proxy_headers=True, lifespan="off")


def serve(app: FastAPI, *, host: str, port: int) -> None:
    server = uvicorn.Server(_config(app, host, port, "info"))
    server.run()
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
