"""Relay limits: at most so many messages per second, and at most N in any sliding window (e.g. 10 000 an hour)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Wait:
    """How long until the next message may go, and which limit says so (for the ops view)."""

    seconds: float
    limit: str
    window: bool = False  # the sliding window, not the per-second pace


class RateLimiter:
    """Decides when the next message may go. Times are `time.monotonic()` seconds; the caller passes `now`.

    The per-second limit spaces messages evenly (no bursts at the start of each second); the window counts
    every message in the last `window_seconds`, including those an earlier run sent (`history`).
    """

    def __init__(self, *, per_second: float | None = None, window_messages: int | None = None,
                 window_seconds: float = 3600.0, history: Iterable[float] = ()) -> None:
        self.per_second = per_second
        self.window_messages = window_messages
        self.window_seconds = window_seconds
        self._interval = 1.0 / per_second if per_second else 0.0
        self._next_slot = float("-inf")
        self._window: deque[float] | None = None
        if window_messages:
            self._window = deque(sorted(history)[-window_messages:], maxlen=window_messages)

    def wait(self, now: float) -> Wait | None:
        """None if a message may go now, else how long to wait and why."""
        if self._window is not None and len(self._window) == self.window_messages:
            free_at = self._window[0] + self.window_seconds
            if free_at > now:
                return Wait(free_at - now, f"{self.window_messages} messages per {_duration(self.window_seconds)}",
                            window=True)
        if self._next_slot > now:
            return Wait(self._next_slot - now, f"{self.per_second:g} messages per second")
        return None

    def take(self, now: float) -> None:
        """Record that a message goes now."""
        if self._interval:
            # Spacing from the later of now and the last slot: an idle pause does not bank a burst.
            self._next_slot = max(now, self._next_slot) + self._interval
        if self._window is not None:
            self._window.append(now)


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} s"
