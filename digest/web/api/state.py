"""What the API's routes share: the web app's state (settings, store, clock, mail), the per-key rate limit, and the
sends that approvals started in the background."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request

from digest.config import Settings
from digest.store import Store
from digest.web.context import WebState
from digest.web.ratelimit import RateLimiter

# Requests per key and window: plenty for a CMS or a portal, a stop for a runaway loop.
REQUESTS_PER_WINDOW = 300
WINDOW_SECONDS = 60


@dataclass
class ApiState:
    web: WebState
    limit: RateLimiter = field(default_factory=lambda: RateLimiter(REQUESTS_PER_WINDOW, WINDOW_SECONDS))
    sends: list[threading.Thread] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.web.settings

    @property
    def store(self) -> Store:
        return self.web.store

    def now(self) -> datetime:
        return self.web.now()

    def wait_for_sends(self, timeout: float = 30) -> None:
        """Let background sends finish (a clean shutdown, and tests)."""
        for thread in list(self.sends):
            thread.join(timeout)


def api_state(request: Request) -> ApiState:
    return request.app.state.api  # type: ignore[no-any-return]
