"""What every route needs: settings, store, signing secret, a transport for confirmation mail, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request

from digest.config import Settings
from digest.store import Store
from digest.transports import Transport
from digest.web.ratelimit import RateLimiter


@dataclass(frozen=True)
class WebState:
    settings: Settings
    store: Store
    secret: bytes
    transport: Callable[[], Transport]
    now: Callable[[], datetime]
    signup_limit: RateLimiter
    site_title: str

    @property
    def digest_names(self) -> list[str]:
        return list(self.settings.digests)


def web_state(request: Request) -> WebState:
    return request.app.state.digest  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
