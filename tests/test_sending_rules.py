"""The sender's small rules on their own: rate limits, backoff, which refusals mean "no such user"."""

from __future__ import annotations

import random

import pytest

from digest.config import Sending
from digest.errors import RecipientRefused
from digest.ratelimit import RateLimiter
from digest.sender import backoff, mask_addresses


def test_window_allows_n_per_window_and_counts_earlier_sends():
    limiter = RateLimiter(window_messages=3, window_seconds=60, history=[-50.0])  # one sent 50 s ago
    limiter.take(0.0)
    limiter.take(1.0)
    wait = limiter.wait(2.0)
    assert wait is not None and wait.window
    assert wait.seconds == pytest.approx(8.0)  # the one from 50 s ago leaves the window at +10 s
    assert wait.limit == "3 messages per minute"
    assert limiter.wait(10.0) is None


def test_per_second_spaces_messages_without_banking_a_burst():
    limiter = RateLimiter(per_second=4)
    limiter.take(0.0)
    assert limiter.wait(0.1).seconds == pytest.approx(0.15)
    assert limiter.wait(0.25) is None
    limiter.take(10.0)  # after a pause: still one slot, not forty
    assert limiter.wait(10.0).seconds == pytest.approx(0.25)


def test_backoff_doubles_with_jitter_and_a_cap():
    config = Sending(retry_delay_seconds=2, max_retry_delay_seconds=10)
    rng = random.Random(5)
    delays = [[backoff(attempt, config, rng) for _ in range(200)] for attempt in (1, 2, 3, 6)]
    for values, base in zip(delays, (2, 4, 8, 10), strict=True):
        assert base * 0.5 <= min(values) < max(values) <= base * 1.5
        assert len(set(values)) > 100  # spread, so retries of many recipients do not come back at once


@pytest.mark.parametrize(("reply", "unknown"), [
    ("550 5.1.1 <a@b.no>: Recipient address rejected: User unknown", True),
    ("550 No such user here", True),
    ("551 User not local", True),
    ("553 Mailbox name not allowed", True),
    ("550 5.2.1 Mailbox disabled", True),
    ("550 5.7.1 Relaying denied", False),
    ("552 5.2.2 Mailbox full", False),
    ("554 Transaction failed", False),
    ("450 4.2.0 Mailbox busy", False),
])
def test_which_refusals_bounce(reply, unknown):
    code = int(reply[:3])
    assert RecipientRefused(reply, recipient="a@b.no", code=code).unknown_user is unknown


def test_addresses_in_server_replies_are_masked():
    assert mask_addresses("550 5.1.1 <kari.nordmann@example.org>: unknown") == "550 5.1.1 <k***@example.org>: unknown"
