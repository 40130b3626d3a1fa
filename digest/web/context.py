"""What every route needs: settings, store, signing secret, a transport for confirmation mail, the clock."""

from __future__ import annotations

import functools
import ipaddress
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
    """The client's address for rate limits and logs: the direct peer, unless that is a trusted proxy.

    Behind a proxy listed in `trusted_proxies`, the address is the right-most X-Forwarded-For entry that is not a
    trusted proxy itself: the one our own proxy wrote. Everything to the left of it the client may have made up.
    From any other peer the header is ignored, so rotating it moves no rate limit.
    """
    peer = request.client.host if request.client else "unknown"
    trusted = _networks(tuple(web_state(request).settings.trusted_proxies))
    if not trusted or not _is_in(peer, trusted):
        return peer
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_in(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
