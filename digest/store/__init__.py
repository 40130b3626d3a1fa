"""The only SQL: every table of kulturdigest behind one SQLAlchemy URL, split by area.

`Store` is the one object the rest of the product holds; each area (editions, the delivery ledger, the schedule,
subscribers, sign-ups, bounces, GDPR, the web cache, editors) lives in its own module as a part of it.
"""

from __future__ import annotations

from digest.store.apikeys import ApiKeyStore
from digest.store.apisubscribers import ApiSubscriberStore
from digest.store.base import StoreBase
from digest.store.bounces import BounceStore
from digest.store.desk_sessions import DeskSessionStore
from digest.store.drafts import DraftStore
from digest.store.editions import EditionStore, StoredEdition
from digest.store.editors import EditorStore
from digest.store.gdpr import GdprStore
from digest.store.ledger import CLAIM_LEASE, PENDING_STATES, Ledger, LedgerStore, LedgerUpdate
from digest.store.schedule import ApprovalRecord, ScheduleStore
from digest.store.schema import metadata, subscribers
from digest.store.signups import SignupStore
from digest.store.sources import SourceOutcome, SourceOutcomeStore
from digest.store.subscribers import ImportReport
from digest.store.webcache import CachedResponse, WebCacheStore

__all__ = [
    "CLAIM_LEASE",
    "PENDING_STATES",
    "ApprovalRecord",
    "CachedResponse",
    "ImportReport",
    "Ledger",
    "LedgerUpdate",
    "SourceOutcome",
    "Store",
    "StoredEdition",
    "metadata",
    "subscribers",
]


class Store(DraftStore, EditionStore, LedgerStore, ScheduleStore, SignupStore, BounceStore, GdprStore, WebCacheStore,
            SourceOutcomeStore, EditorStore, DeskSessionStore, ApiKeyStore, ApiSubscriberStore, StoreBase):
    """All state of kulturdigest behind one SQLAlchemy URL (a SQLite file by default)."""
