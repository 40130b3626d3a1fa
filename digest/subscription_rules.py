"""The rules of the subscriber side as plain functions: what a confirmation, an unsubscribe and a bounce change.

The store applies these inside its transactions; keeping them here means they are read, tested and changed
without SQL in sight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from digest.consent import ACTIVE

# Soft bounces in a row (no message delivered between them) that make an address bounced.
SOFT_BOUNCES_IN_A_ROW = 3


def digests_after_confirming(status: str, current: Iterable[str] | None, asked: Iterable[str]) -> set[str] | None:
    """Which digests a confirmed sign-up leaves the subscriber with (None: every digest, unchanged).

    Someone coming back after leaving gets exactly what they asked for now; an active subscriber who receives
    every digest keeps that; one with chosen digests adds the new ones.
    """
    if status != ACTIVE:
        return set(asked)
    if current is None:
        return None
    return set(current) | set(asked)


@dataclass(frozen=True)
class UnsubscribeChange:
    """What one unsubscribe does: `remaining` digests kept (empty: leave altogether), `changed` False: nothing."""

    remaining: frozenset[str]
    changed: bool


def after_unsubscribing(digest: str, receives: Iterable[str]) -> UnsubscribeChange:
    """Stopping `digest` for someone who receives `receives`. A token for a digest no longer configured (so not
    among them) still stops the mail it came with: that means leaving altogether."""
    before = set(receives)
    if digest in before:
        return UnsubscribeChange(remaining=frozenset(before - {digest}), changed=True)
    return UnsubscribeChange(remaining=frozenset(), changed=True)


@dataclass(frozen=True)
class SoftBounce:
    """A soft bounce counted: the new run of soft bounces, and whether it makes the address bounced."""

    in_row: int
    bounced: bool


def count_soft_bounce(in_row: int, *, delivered_since_last: bool) -> SoftBounce:
    """One more soft bounce. A message delivered without bouncing since the previous one breaks the row."""
    in_row = (0 if delivered_since_last else in_row) + 1
    return SoftBounce(in_row=in_row, bounced=in_row >= SOFT_BOUNCES_IN_A_ROW)
